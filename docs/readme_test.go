package docs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/server/servertest"
	"github.com/supportchat/supportchat/internal/testenv"
)

// readmeBlock returns the body of the first ```lang block of README.md whose first line
// starts with first.
func readmeBlock(t *testing.T, lang, first string) string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```"+lang+"\n(.*?)```").FindAllStringSubmatch(string(raw), -1) {
		if strings.HasPrefix(m[1], first) {
			return m[1]
		}
	}
	t.Fatalf("README.md has no ```%s block starting with %q", lang, first)
	return ""
}

// TestREADMECommandsExist keeps the README's two commands working: the development stack is a
// main package, `make test` a target of the Makefile, and .ci/run calls exactly it.
func TestREADMECommandsExist(t *testing.T) {
	block := readmeBlock(t, "sh", "go run ./cmd/chatd-dev")
	var cmds []string
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		if cmd, _, _ := strings.Cut(line, "#"); strings.TrimSpace(cmd) != "" {
			cmds = append(cmds, strings.TrimSpace(cmd))
		}
	}
	if len(cmds) != 2 || cmds[0] != "go run ./cmd/chatd-dev" || cmds[1] != "make test" {
		t.Fatalf("the README's commands are %q, want go run ./cmd/chatd-dev and make test", cmds)
	}
	out, err := exec.Command("go", "list", "-f", "{{.Name}}", "../cmd/chatd-dev").Output()
	if err != nil || strings.TrimSpace(string(out)) != "main" {
		t.Errorf("./cmd/chatd-dev is not a main package: %q, %v", out, err)
	}
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^test:`).Match(makefile) {
		t.Error("the Makefile has no test target")
	}
	ci, err := os.ReadFile("../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(ci)), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "make test" {
		t.Errorf(".ci/run ends with %q, want make test", last)
	}
}

// TestREADMEAPITourWorks runs the README's API tour, line by line, against the service (server.Run
// on FerretDB and a private Redis, with demo-shop's tokens from a local issuer): every request
// must succeed and its answer match api/openapi.yaml.
func TestREADMEAPITourWorks(t *testing.T) {
	block := readmeBlock(t, "sh", "api() {")
	lines := strings.Split(strings.TrimSpace(block), "\n")
	defaults := curlArgs(t, strings.TrimSuffix(strings.TrimPrefix(lines[0], "api() { curl -s "), ` "$@"; }`))

	uri, database := testenv.MustMongo(t)
	rds := testenv.StartRedis(t)
	iss := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	dir := t.TempDir()
	tenantFile := fmt.Sprintf("id: demo-shop\nname: Demo Shop\noidc:\n  issuer: %s\n  audience: support-chat\n  admin_claim: roles\n  admin_values: [support_admin]\n", iss.URL())
	if err := os.WriteFile(filepath.Join(dir, "demo-shop.yaml"), []byte(tenantFile), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CHAT_ADDR": "127.0.0.1:0", "CHAT_MONGODB_URI": uri, "CHAT_MONGODB_DATABASE": database,
		"CHAT_REDIS_URL": rds.URL(), "CHAT_TENANTS_DIR": dir, "OTEL_SDK_DISABLED": "true",
	}
	base := "http://" + servertest.Run(t, env, server.Options{Stdout: io.Discard}, 30*time.Second).String()
	api := testenv.LoadOpenAPI(t, base)
	vars := map[string]string{"CUSTOMER": iss.Token(t, "cust-ada", false), "ADMIN": iss.Token(t, "admin-grace", true)}

	ran := 0
	for _, line := range lines[1:] {
		line = os.Expand(line, func(k string) string {
			if v, ok := vars[k]; ok {
				return v
			}
			t.Fatalf("the tour uses $%s before a line sets it: %s", k, line)
			return ""
		})
		args := curlArgs(t, strings.TrimPrefix(line, "api "))
		req := args.request(t, base, defaults)
		status, header, body := send(t, req, args.stream)
		if status < 200 || status > 299 {
			t.Fatalf("%s %s = %d %s", req.Method, req.URL, status, body)
		}
		if err := api.Check(req, status, header, body); err != nil && !args.stream {
			t.Errorf("%v", err)
		}
		if strings.HasSuffix(req.URL.Path, "/chat/start") {
			var c struct{ ID string }
			if err := json.Unmarshal(body, &c); err != nil || c.ID == "" {
				t.Fatalf("start answered %s", body)
			}
			vars["ID"] = c.ID
		}
		ran++
	}
	if ran != 9 {
		t.Errorf("the tour has %d requests, want the nine the README explains", ran)
	}
}

// send sends req and returns its answer; a stream is read until its first bytes arrive.
func send(t *testing.T, req *http.Request, stream bool) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	if stream {
		first := make([]byte, 1)
		if _, err := io.ReadFull(resp.Body, first); err != nil {
			t.Fatalf("%s: no bytes from the stream: %v", req.URL, err)
		}
		return resp.StatusCode, resp.Header, first
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// curl is what the tour's curl arguments ask for.
type curl struct {
	method, url, data string
	headers           [][2]string
	stream            bool
}

// curlArgs parses the curl options the tour uses (-H, -X, -d, -N, -s and a URL), with
// shell-style single and double quotes.
func curlArgs(t *testing.T, s string) curl {
	t.Helper()
	words := shellWords(t, s)
	var c curl
	for i := 0; i < len(words); i++ {
		w := words[i]
		next := func() string {
			if i+1 >= len(words) {
				t.Fatalf("%s without a value in %q", w, s)
			}
			i++
			return words[i]
		}
		switch w {
		case "-s":
		case "-N":
			c.stream = true
		case "-H":
			k, v, ok := strings.Cut(next(), ":")
			if !ok {
				t.Fatalf("bad header in %q", s)
			}
			c.headers = append(c.headers, [2]string{k, strings.TrimSpace(v)})
		case "-X":
			c.method = next()
		case "-d":
			c.data = next()
		default:
			if strings.HasPrefix(w, "-") || c.url != "" {
				t.Fatalf("the tour uses %q, which this test does not understand: %q", w, s)
			}
			c.url = w
		}
	}
	return c
}

// request returns the request of c sent to base instead of localhost:8080, with the headers
// of defaults first.
func (c curl) request(t *testing.T, base string, defaults curl) *http.Request {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodGet
		if c.data != "" {
			method = http.MethodPost
		}
	}
	path, ok := strings.CutPrefix(c.url, "localhost:8080")
	if !ok {
		t.Fatalf("the tour's URL %q is not on localhost:8080", c.url)
	}
	var body io.Reader
	if c.data != "" {
		body = bytes.NewReader([]byte(c.data))
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range append(defaults.headers, c.headers...) {
		req.Header.Set(h[0], h[1])
	}
	return req
}

// shellWords splits s into words as a shell does for the quoting the tour uses.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; ch {
		case ' ', '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case '\'', '"':
			end := strings.IndexByte(s[i+1:], ch)
			if end < 0 {
				t.Fatalf("unclosed quote in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
