package main

// The support screen in a real browser: chatd-dev's demo storefront, its <support-chat> widget
// and the agent inbox, driven by headless Chromium through chromedp. Tests wait for outcomes
// (polling the page) and never compare pixels; screenshots of the main states are saved for
// people to look at (see browserArtifacts).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/supportchat/supportchat/internal/testenv"
)

// requireBrowserEnv names the variable that turns a missing Chromium from a skip into a
// failure; .ci/run sets it after installing chromium.
const requireBrowserEnv = "CHAT_REQUIRE_BROWSER"

// browserArtifactsEnv names the folder the screenshots go to; by default a folder under the
// system's temporary directory, overwritten by each run.
const browserArtifactsEnv = "CHAT_BROWSER_ARTIFACTS"

// waitTimeout bounds one wait for an outcome in the page: wide, for a loaded 2-core CI machine
// running the race detector.
const waitTimeout = 30 * time.Second

// W is the widget's shadow root, for the expressions the tests evaluate in the page.
const W = `document.querySelector('support-chat').shadowRoot`

// syncBuffer is an io.Writer safe for the stack's goroutines and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// demoURLPattern finds the demo URL chatd-dev prints once the stack is up and seeded.
var demoURLPattern = regexp.MustCompile(`Demo storefront[^\n]*: (http://\S+?)/\n`)

// startDevStack runs chatd-dev as `go run ./cmd/chatd-dev` does, on a free port, with one tenant
// (demo-shop, without business hours so presence alone decides whether support is online; its
// web.allowed_origins lists origin when given), a private Redis and a database of its own. It
// returns the base URL once the demo data is seeded.
func startDevStack(t *testing.T, origin string) string {
	t.Helper()
	return startDevStackWith(t, devStackOptions{origin: origin})
}

// devStackOptions vary startDevStackWith's stack.
type devStackOptions struct {
	// origin is listed in web.allowed_origins when not "".
	origin string
	// chat is appended to the tenant file's chat section (indented by two spaces).
	chat string
	// now is the service's clock; nil is the real one.
	now func() time.Time
	// env adds to or overrides chatd-dev's environment (CHAT_LIMITS_*, say).
	env map[string]string
}

// startDevStackWith is startDevStack with the options o.
func startDevStackWith(t *testing.T, o devStackOptions) string {
	t.Helper()
	origin := o.origin
	uri, database := testenv.MustMongo(t)
	rds := testenv.StartRedis(t)
	dir := t.TempDir()
	web := ""
	if origin != "" {
		web = fmt.Sprintf("web:\n  allowed_origins: [%s]\n", origin)
	}
	tenantFile := `id: demo-shop
name: Demo Shop
oidc:
  issuer: https://id.demo-shop.example/realms/shop
  audience: support-chat
  admin_claim: roles
  admin_values: [support_admin]
  name_claim: name
` + web + `chat:
  away_prompt: "Our team is away right now. We usually reply within a few hours."
` + o.chat
	if err := os.WriteFile(filepath.Join(dir, "demo-shop.yaml"), []byte(tenantFile), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CHAT_ADDR":             "127.0.0.1:0",
		"CHAT_METRICS_ADDR":     "127.0.0.1:0",
		"CHAT_MONGODB_URI":      uri,
		"CHAT_MONGODB_DATABASE": database,
		"CHAT_REDIS_URL":        rds.URL(),
		"CHAT_TENANTS_DIR":      dir,
		"CHAT_LOG_LEVEL":        "warn",
		"OTEL_SDK_DISABLED":     "true",
	}
	maps.Copy(env, o.env)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	errc := make(chan error, 1)
	go func() {
		s := &stack{getenv: func(k string) string { return env[k] }, stdout: &stdout, stderr: &stderr, now: o.now}
		defer s.Close()
		errc <- s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("chatd-dev ended with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("chatd-dev did not stop within 30s")
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if m := demoURLPattern.FindStringSubmatch(stdout.String()); m != nil {
			// The server listens on 127.0.0.1; do not let the browser try ::1 first.
			return strings.Replace(m[1], "://localhost:", "://127.0.0.1:", 1)
		}
		select {
		case err := <-errc:
			t.Fatalf("chatd-dev ended early: %v\nstderr:\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("chatd-dev printed no demo URL within 90s\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	return ""
}

// chromiumPath returns the Chromium to drive, or "" when none is installed.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless Chromium with a fresh profile, for one test.
type browser struct {
	ctx       context.Context
	artifacts string
}

// newBrowser starts Chromium, or skips the test when it is not installed (fails instead with
// CHAT_REQUIRE_BROWSER set). The machine has no network but loopback, so everything that
// would phone home is off.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv(requireBrowserEnv) != "" {
			t.Fatalf("no chromium on PATH, and %s is set: install it (apt-get install chromium)", requireBrowserEnv)
		}
		t.Skipf("browser test skipped: no chromium on PATH (apt-get install chromium; set %s=1 to fail instead)", requireBrowserEnv)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	dir := os.Getenv(browserArtifactsEnv)
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "supportchat-browser")
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", dir)
	return &browser{ctx: bctx, artifacts: dir}
}

// tab is one page of a person (a separate browser profile: its own storage and cookies).
type tab struct {
	t    *testing.T
	b    *browser
	name string
	ctx  context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func (b *browser) tab(t *testing.T, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &tab{t: t, b: b, name: name, ctx: ctx}
	// The first run opens the tab for the life of ctx: it must not have a deadline of its own.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("opening the %s tab: %v", name, err)
	}
	// Each profile is its own window; make each act as the focused one, as a person's would.
	p.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
		return err
	}))
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m)
			p.mu.Unlock()
		}
	}()
	return p
}

// do runs actions in the tab, each bounded by waitTimeout.
func (p *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

func (p *tab) navigate(url string) {
	p.t.Helper()
	p.do(chromedp.Navigate(url))
}

// eval returns the value of a JavaScript expression in the page.
func eval[T any](p *tab, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: evaluating %s: %v", p.name, expr, err)
	}
	return v
}

// waitFor polls expr until it is truthy; on timeout it fails with a screenshot and the text of
// the page and the widget.
func (p *tab) waitFor(what, expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void]("(() => { try { return ("+expr+"); } catch (e) { return false; } })()",
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil {
		p.screenshot("failed-" + strings.ReplaceAll(what, " ", "-"))
		p.t.Fatalf("%s: waiting for %s: %v\npage: %s\nconsole: %s", p.name, what, err, p.pageText(), p.consoleText())
	}
}

// pageText returns the visible text of the page and of the widget, for failure messages.
func (p *tab) pageText() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText + '\n--- widget ---\n' + (document.querySelector('support-chat')?.shadowRoot?.querySelector('.panel')?.innerText || '')`))
	if err != nil {
		return err.Error()
	}
	return s
}

// click clicks the center of the element of expr with the mouse, once the element is visible,
// has stayed in place for two polls (so a late layout shift cannot move it away) and is what a
// click at its center hits (through shadow roots).
func (p *tab) click(what, expr string) {
	p.t.Helper()
	p.waitFor(what, `(() => { const el = `+expr+`; if (!el) return false; const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; })()`)
	eval[bool](p, `((`+expr+`).scrollIntoView({block: 'center'}), window.__clickAt = '', true)`)
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout+5*time.Second)
	defer cancel()
	xy, err := chromedp.Run(ctx, chromedp.Poll[[]float64](`(() => {
		const el = `+expr+`;
		if (!el) return false;
		const r = el.getBoundingClientRect(), x = r.x + r.width / 2, y = r.y + r.height / 2;
		let hit = document.elementFromPoint(x, y);
		while (hit && hit.shadowRoot) { const inner = hit.shadowRoot.elementFromPoint(x, y); if (!inner || inner === hit) break; hit = inner; }
		if (!hit || !(hit === el || el.contains(hit))) return false;
		if (window.__clickAt !== x + ',' + y) { window.__clickAt = x + ',' + y; return false; }
		return [x, y];
	})()`, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil {
		p.screenshot("failed-click-" + strings.ReplaceAll(what, " ", "-"))
		p.t.Fatalf("%s: %s never stayed clickable: %v\npage: %s", p.name, what, err, p.pageText())
	}
	p.do(chromedp.MouseClickXY(xy[0], xy[1]))
}

// typeInto focuses the field of expr and types text with key events.
func (p *tab) typeInto(what, expr, text string) {
	p.t.Helper()
	p.waitFor(what, expr)
	eval[bool](p, `(() => { (`+expr+`).focus(); return true; })()`)
	p.keys(text)
}

// keys types keys (kb constants for special keys) into whatever has focus.
func (p *tab) keys(keys string) {
	p.t.Helper()
	p.do(chromedp.KeyEvent(keys))
}

// focused returns a description of the element with focus, through shadow roots.
func (p *tab) focused() string {
	return eval[string](p, `(() => { let a = document.activeElement; while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
		return a ? a.tagName.toLowerCase() + (a.id ? '#' + a.id : '') + (a.className ? '.' + String(a.className).split(' ').join('.') : '') : ''; })()`)
}

// screenshot saves the viewport as <artifacts>/<name>.png, once animations have ended.
func (p *tab) screenshot(name string) {
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	_, _ = chromedp.Run(ctx, chromedp.Poll[chromedp.Void](`[document, document.querySelector('support-chat')?.shadowRoot].every(r => !r || r.getAnimations().every(a => a.playState !== 'running'))`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(5*time.Second)))
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Logf("%s: screenshot %s: %v", p.name, name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(p.b.artifacts, name+".png"), png, 0o644); err != nil {
		p.t.Logf("saving screenshot %s: %v", name, err)
	}
}

// checkConsole fails on uncaught exceptions and on anything a Content Security Policy refused.
// Failed requests the test caused on purpose (a 401) are network entries, not errors here.
func (p *tab) checkConsole() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.console {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Trusted Type") ||
			(m.Type == chromedp.ConsoleError && m.Source != "network") {
			p.t.Errorf("%s: console %s: %s (%s:%d)", p.name, m.Type, m.Text, m.URL, m.Line)
		}
	}
}

func (p *tab) consoleText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, m := range p.console {
		fmt.Fprintf(&b, "\n  %s %s: %s", m.Type, m.Source, m.Text)
	}
	return b.String()
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Expressions about the widget.
func widgetHasMessage(text string) string {
	return `[...` + W + `.querySelectorAll('.log .msg:not([data-id^="local-"]) .text')].some(e => e.textContent === ` + js(text) + `)`
}

func inboxHasMessage(text string) string {
	return `[...document.querySelectorAll('#thread .log .msg .text')].some(e => e.textContent === ` + js(text) + `)`
}

func inboxConversation(subject string) string {
	return `[...document.querySelectorAll('#conversations .conv')].find(b => b.querySelector('.subject').textContent === ` + js(subject) + `)`
}

// TestDemoShopperAndAgentChatLive is the newcomer's story: a shopper on the demo storefront sees
// the away prompt while no admin is online and starts a chat about their order; the admin in
// the inbox sees it arrive without reloading, with the order, goes online and replies; the
// shopper sees the reply live and the away banner go; a reload keeps the history.
func TestDemoShopperAndAgentChatLive(t *testing.T) {
	b := newBrowser(t)
	base := startDevStack(t, "")
	const (
		question = "Has my order shipped yet?"
		answer   = "It ships today! The tracking link follows within the hour."
	)

	admin := b.tab(t, "inbox")
	admin.navigate(base + "/inbox/")
	admin.waitFor("the demo conversations in the inbox", `document.querySelectorAll('#conversations .conv').length === 3`)
	admin.waitFor("the inbox's live stream", `document.getElementById('connection').textContent === 'Live'`)

	shop := b.tab(t, "shop")
	shop.navigate(base + "/")
	shop.click("the chat launcher", W+`.querySelector('.launcher')`)
	shop.waitFor("the panel", `!`+W+`.querySelector('.panel').hidden`)
	shop.waitFor("Ada's two demo conversations", W+`.querySelectorAll('.conversations .conv').length === 2`)
	shop.waitFor("the away prompt while no admin is online", `!`+W+`.querySelector('.away').hidden && `+
		W+`.querySelector('.away .prompt').textContent === 'Our team is away right now. We usually reply within a few hours.'`)
	shop.waitFor("the list's live stream", `document.querySelector('support-chat').shadowRoot.querySelector('.offline').hidden`)
	shop.screenshot("1-shop-away")

	shop.click("Start a chat", W+`.querySelector('button.start')`)
	shop.typeInto("the first message field", W+`.querySelector('#start-message')`, question)
	shop.click("Send", W+`.querySelector('form.start button[type=submit]')`)
	shop.waitFor("the new conversation with the message", widgetHasMessage(question))
	shop.waitFor("the away notice in the conversation", W+`.querySelector('.log .msg.system')?.textContent.includes('Our team is away')`)
	shop.screenshot("2-shop-started")

	admin.waitFor("the new conversation, without a reload", inboxConversation(question)+` !== undefined`)
	if n := eval[int](admin, `performance.getEntriesByType('navigation').length`); n != 1 {
		t.Errorf("the inbox navigated %d times, want 1 (no reload)", n)
	}
	admin.click("the new conversation", inboxConversation(question))
	admin.waitFor("the shopper's message", inboxHasMessage(question))
	admin.waitFor("the order context", `document.querySelector('.context [data-field=order]')?.textContent === 'ord-10057'`)
	admin.screenshot("3-inbox-new-chat")

	admin.click("the online switch", `document.getElementById('presence')`)
	admin.waitFor("the switch on", `document.getElementById('presence').getAttribute('aria-checked') === 'true'`)
	shop.waitFor("the away banner to disappear", W+`.querySelector('.away').hidden && !`+W+`.querySelector('.subtitle').hidden`)

	admin.click("Assign to me", `document.querySelector('[data-action=assign]')`)
	admin.waitFor("the assignment", `document.querySelector('[data-action=assign]').disabled`)
	admin.typeInto("the reply field", `document.getElementById('reply')`, answer)
	admin.keys(kb.Enter)
	admin.waitFor("the reply in the inbox", inboxHasMessage(answer))

	shop.waitFor("the reply, live", widgetHasMessage(answer))
	if who := eval[string](shop, W+`.querySelector('.log .msg.theirs .who').textContent`); who != "Grace" {
		t.Errorf("the reply is signed %q, want Grace", who)
	}
	// The shopper is looking at the conversation, so the reply is marked read at once.
	shop.waitFor("the reply marked read", W+`.querySelector('.launcher .badge').hidden`)
	shop.screenshot("4-shop-reply")
	admin.screenshot("5-inbox-replied")

	// Reloading keeps the history.
	shop.navigate(base + "/")
	shop.click("the chat launcher", W+`.querySelector('.launcher')`)
	shop.waitFor("the conversation on top, with the reply", W+`.querySelector('.conversations .conv .preview')?.textContent === 'Grace: ' + `+js(answer))
	shop.click("the conversation", W+`.querySelector('.conversations .conv')`)
	shop.waitFor("the whole history", widgetHasMessage(question)+` && `+widgetHasMessage(answer)+` && `+W+`.querySelector('.log .msg.system') !== null`)
	shop.screenshot("6-shop-after-reload")

	// Reading it there moved the shopper's read mark: the launcher shows no unread badge.
	shop.waitFor("no unread messages left", W+`.querySelector('.launcher .badge').hidden`)
	admin.checkConsole()
	shop.checkConsole()
}

// TestWidgetKeyboardOnly walks the shopper's path with the keyboard alone: Tab to the launcher
// (with a visible focus ring), Enter to open, start a chat, send a second message, Escape to
// close with focus back on the launcher. Reduced motion turns the animations off.
func TestWidgetKeyboardOnly(t *testing.T) {
	b := newBrowser(t)
	base := startDevStack(t, "")
	shop := b.tab(t, "shop")
	shop.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-reduced-motion", Value: "reduce"}},
		})
		return err
	}))
	shop.navigate(base + "/")
	shop.waitFor("the widget's list", W+`.querySelectorAll('.conversations .conv').length === 2`)

	for i := 0; i < 40 && !strings.HasPrefix(shop.focused(), "button.launcher"); i++ {
		shop.keys(kb.Tab)
	}
	if got := shop.focused(); !strings.HasPrefix(got, "button.launcher") {
		t.Fatalf("Tab never reached the launcher; focus is on %q", got)
	}
	if style := eval[string](shop, `getComputedStyle(`+W+`.querySelector('.launcher')).outlineStyle`); style == "none" {
		t.Error("the focused launcher shows no focus outline")
	}
	shop.screenshot("1-launcher-focused")

	shop.keys(kb.Enter)
	shop.waitFor("the open panel", `!`+W+`.querySelector('.panel').hidden`)
	if got := shop.focused(); got != "button.primary.start" {
		t.Errorf("after opening, focus is on %q, want the Start a chat button", got)
	}
	if anim := eval[string](shop, `getComputedStyle(`+W+`.querySelector('.panel')).animationName`); anim != "none" {
		t.Errorf("with prefers-reduced-motion the panel animates (%q)", anim)
	}
	shop.keys(kb.Enter)
	shop.waitFor("the start form", `!!`+W+`.querySelector('#start-message')`)
	if got := shop.focused(); got != "textarea#start-message" {
		t.Errorf("in the start form, focus is on %q, want the message field", got)
	}
	shop.keys("Keyboard only, no mouse")
	shop.keys(kb.Enter)
	shop.waitFor("the conversation", widgetHasMessage("Keyboard only, no mouse"))
	if got := shop.focused(); got != "textarea#composer" {
		t.Errorf("in the conversation, focus is on %q, want the composer", got)
	}
	shop.keys("A second message")
	shop.keys(kb.Enter)
	shop.waitFor("the second message, stored", widgetHasMessage("A second message"))
	if live := eval[string](shop, W+`.querySelector('.log').getAttribute('role')`); live != "log" {
		t.Errorf("the message list has role %q, want log (a live region)", live)
	}
	shop.screenshot("2-conversation-by-keyboard")

	shop.keys(kb.Escape)
	shop.waitFor("the closed panel", W+`.querySelector('.panel').hidden`)
	if got := shop.focused(); !strings.HasPrefix(got, "button.launcher") {
		t.Errorf("after Escape, focus is on %q, want the launcher", got)
	}
	if got := eval[string](shop, W+`.querySelector('.launcher').getAttribute('aria-expanded')`); got != "false" {
		t.Errorf("launcher aria-expanded = %q after closing, want false", got)
	}
	shop.checkConsole()
}

// TestWidgetShowsMessageTextAsText sends markup both ways: the shopper's message, the subject
// and the admin's reply are shown as the characters typed, never parsed as HTML, in the
// widget and in the inbox.
func TestWidgetShowsMessageTextAsText(t *testing.T) {
	b := newBrowser(t)
	base := startDevStack(t, "")
	const (
		attack  = `<img src=x onerror="window.__pwned = 1"><b>bold?</b>`
		subject = `<i>subject</i>`
		reply   = `<script>window.__pwned = 2</script><img src=y onerror="window.__pwned = 3">`
	)
	shop := b.tab(t, "shop")
	shop.navigate(base + "/")
	shop.click("the chat launcher", W+`.querySelector('.launcher')`)
	shop.waitFor("Ada's two demo conversations", W+`.querySelectorAll('.conversations .conv').length === 2`)
	shop.click("Start a chat", W+`.querySelector('button.start')`)
	shop.typeInto("the message field", W+`.querySelector('#start-message')`, attack)
	shop.typeInto("the subject field", W+`.querySelector('#start-subject')`, subject)
	shop.click("Send", W+`.querySelector('form.start button[type=submit]')`)
	shop.waitFor("the message, as text", widgetHasMessage(attack))
	if title := eval[string](shop, W+`.querySelector('#title').textContent`); title != subject {
		t.Errorf("the title reads %q, want the subject %q as typed", title, subject)
	}

	admin := b.tab(t, "inbox")
	admin.navigate(base + "/inbox/")
	admin.click("the conversation", inboxConversation(subject))
	admin.waitFor("the message in the inbox, as text", inboxHasMessage(attack))
	admin.typeInto("the reply field", `document.getElementById('reply')`, reply)
	admin.keys(kb.Enter)
	admin.waitFor("the reply in the inbox, as text", inboxHasMessage(reply))

	shop.waitFor("the reply, as text", widgetHasMessage(reply))
	shop.screenshot("markup-as-text")
	admin.screenshot("inbox-markup-as-text")
	for _, p := range []*tab{shop, admin} {
		if n := eval[int](p, `document.querySelectorAll('img, script:not([src]), b, i').length + (document.querySelector('support-chat')?.shadowRoot.querySelectorAll('img, script, b, i').length || 0)`); n != 0 {
			t.Errorf("%s: %d elements were made from message text", p.name, n)
		}
		if pwned := eval[bool](p, `window.__pwned !== undefined`); pwned {
			t.Errorf("%s: a message ran script", p.name)
		}
		p.checkConsole()
	}
}

// TestWidgetOnAnotherOrigin embeds the widget as a storefront on its own domain would: the page
// is on another origin, under a strict Content Security Policy with Trusted Types, loads the
// module from chatd (CORS for the module and for the API through the tenant's
// web.allowed_origins), shows it inline, translates two strings, and hands out a bad token
// first, so the widget must ask getToken again after the 401. In dark mode it takes dark colors.
func TestWidgetOnAnotherOrigin(t *testing.T) {
	b := newBrowser(t)
	var chatd string // set once the stack runs; the storefront must exist first, for its origin
	var mu sync.Mutex
	storefront := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		api := chatd
		mu.Unlock()
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self' "+api+"; connect-src 'self' "+api+
				"; style-src 'self'; base-uri 'none'; require-trusted-types-for 'script'; trusted-types 'none'")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><html lang="de"><head><meta charset="utf-8"><title>Another shop</title>
<script type="module" src="%s/widget/v1/support-chat.js"></script>
<script type="module" src="/page.js"></script></head>
<body><h1>Hilfe</h1><support-chat tenant="demo-shop" api="%s" inline></support-chat></body></html>`, api, api)
		case "/page.js":
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = io.WriteString(w, `window.tokenCalls = 0;
const chat = document.querySelector('support-chat');
chat.strings = { start: 'Chat beginnen', title: 'Kundendienst' };
chat.getToken = async () => {
  window.tokenCalls++;
  if (window.tokenCalls === 1) return 'not-a-token';
  const res = await fetch('/token');
  return (await res.json()).access_token;
};`)
		case "/token":
			// The storefront's own back end gets the shopper's token (here from chatd-dev).
			res, err := http.Post(api+"/demo/token", "application/json", strings.NewReader(`{"tenant":"demo-shop","role":"customer"}`))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer res.Body.Close()
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.Copy(w, res.Body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(storefront.Close)
	base := startDevStack(t, storefront.URL)
	mu.Lock()
	chatd = base
	mu.Unlock()

	shop := b.tab(t, "storefront")
	shop.navigate(storefront.URL + "/")
	shop.waitFor("Ada's conversations, across origins", W+`.querySelectorAll('.conversations .conv').length === 2`)
	// Once more after the 401; on a loaded machine a connection of the event stream that fails
	// (and is retried with a fresh token) may add a call, never a loop.
	if calls := eval[int](shop, `window.tokenCalls`); calls < 2 || calls > 4 {
		t.Errorf("getToken was called %d times, want 2 (once more after the 401), at most 4", calls)
	}
	if got := eval[string](shop, W+`.querySelector('button.start').textContent + ' / ' + `+W+`.querySelector('#title').textContent`); got != "Chat beginnen / Kundendienst" {
		t.Errorf("translated strings show %q", got)
	}
	if got := eval[string](shop, `[getComputedStyle(`+W+`.querySelector('.launcher')).display, getComputedStyle(`+W+`.querySelector('.panel')).display].join()`); got != "none,flex" {
		t.Errorf("inline widget: launcher and panel display %q, want none,flex (styles applied under the CSP)", got)
	}
	light := eval[string](shop, `getComputedStyle(`+W+`.querySelector('.panel')).backgroundColor`)
	shop.screenshot("1-inline-light")
	shop.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		})
		return err
	}))
	shop.waitFor("dark colors", `getComputedStyle(`+W+`.querySelector('.panel')).backgroundColor === 'rgb(29, 30, 34)'`)
	if light != "rgb(255, 255, 255)" {
		t.Errorf("light panel background %s, want white", light)
	}
	shop.screenshot("2-inline-dark")
	shop.checkConsole()
}

// setOffline cuts the tab's network (requests fail, navigator.onLine turns false and the page
// gets an offline event) or gives it back.
func (p *tab) setOffline(offline bool) {
	p.t.Helper()
	p.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		var conds []*network.Conditions
		if offline {
			conds = append(conds, &network.Conditions{Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
		}
		if _, err := cdp.Call(ctx, tg, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: conds}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1})
		return err
	}))
}

// api calls chatd-dev's API as role (customer Ada or admin Grace) and decodes the answer into out.
func api(t *testing.T, base, role, method, path string, body, out any) {
	t.Helper()
	res, err := http.Post(base+"/demo/token", "application/json", strings.NewReader(`{"tenant":"demo-shop","role":"`+role+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("X-Tenant-ID", "demo-shop")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("%s %s = %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWidgetGoesOfflineAndCatchesUp cuts the shopper's network: the widget says it is offline,
// a message written meanwhile waits as not sent, and once the network is back the widget
// reconnects by itself, shows the answer the team sent meanwhile and sends the waiting message,
// stored once.
func TestWidgetGoesOfflineAndCatchesUp(t *testing.T) {
	b := newBrowser(t)
	base := startDevStack(t, "")
	const (
		answer  = "Your jacket left the warehouse this morning."
		written = "Thanks! And the boots?"
	)
	shop := b.tab(t, "shop")
	shop.navigate(base + "/")
	shop.click("the chat launcher", W+`.querySelector('.launcher')`)
	order := `[...` + W + `.querySelectorAll('.conversations .conv')].find(b => b.querySelector('.subject').textContent === 'Where is my order?')`
	shop.waitFor("the demo conversation about the order", order+` !== undefined`)
	id := eval[string](shop, order+`.dataset.id`)
	shop.click("the demo conversation about the order", order)
	shop.waitFor("its history", widgetHasMessage("Great, thank you!"))
	shop.waitFor("the live connection", `document.querySelector('support-chat').connection === 'online'`)

	shop.setOffline(true)
	shop.waitFor("the offline indicator", `!`+W+`.querySelector('.offline').hidden && document.querySelector('support-chat').connection === 'offline'`)
	api(t, base, "admin", "POST", "/api/v1/chat/"+id+"/messages", map[string]string{"body": answer}, nil)
	shop.typeInto("the composer", W+`.querySelector('#composer')`, written)
	shop.keys(kb.Enter)
	shop.waitFor("the message marked as not sent", W+`.querySelector('.log .msg.failed .text')?.textContent === `+js(written))
	shop.screenshot("1-offline")

	shop.setOffline(false)
	shop.waitFor("the offline indicator to go", W+`.querySelector('.offline').hidden && document.querySelector('support-chat').connection === 'online'`)
	shop.waitFor("the answer sent while offline", widgetHasMessage(answer))
	shop.waitFor("the waiting message, sent", widgetHasMessage(written)+` && !`+W+`.querySelector('.log .msg.failed')`)
	shop.screenshot("2-back-online")

	var page struct {
		Messages []struct {
			Body string `json:"body"`
		} `json:"messages"`
	}
	api(t, base, "customer", "GET", "/api/v1/chat/"+id+"/messages", nil, &page)
	stored := 0
	for _, m := range page.Messages {
		if m.Body == written {
			stored++
		}
	}
	if stored != 1 {
		t.Errorf("the message written offline is stored %d times, want once", stored)
	}
	shop.checkConsole()
}

// TestWidgetShowsTheAwayPromptWhenHoursClose keeps the widget open while business hours close
// (the service's clock moves to 17:00 in Berlin): the away prompt replaces the online state
// without a reload, carried by the support.changed event the support clock publishes.
func TestWidgetShowsTheAwayPromptWhenHoursClose(t *testing.T) {
	b := newBrowser(t)
	clk := testenv.NewClock(time.Date(2026, 11, 25, 15, 59, 30, 0, time.UTC)) // Wednesday 16:59:30 in Berlin
	base := startDevStackWith(t, devStackOptions{now: clk.Now, chat: `  business_hours:
    timezone: Europe/Berlin
    weekly: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"], thu: ["09:00-17:00"], fri: ["09:00-17:00"]}
`})
	shop := b.tab(t, "shop")
	shop.navigate(base + "/")
	shop.click("the chat launcher", W+`.querySelector('.launcher')`)
	shop.waitFor("the live connection", `document.querySelector('support-chat').connection === 'online'`)
	api(t, base, "admin", "PUT", "/api/v1/chat/presence", map[string]string{"status": "online"}, nil) // online until 17:00:30
	shop.waitFor("support online", W+`.querySelector('.away').hidden && !`+W+`.querySelector('.subtitle').hidden`)
	shop.screenshot("1-before-closing")

	clk.Set(time.Date(2026, 11, 25, 16, 0, 0, 500e6, time.UTC)) // 17:00:00.5 in Berlin
	shop.waitFor("the away prompt after closing time", `!`+W+`.querySelector('.away').hidden && `+
		W+`.querySelector('.away .prompt').textContent === 'Our team is away right now. We usually reply within a few hours.'`)
	if n := eval[int](shop, `performance.getEntriesByType('navigation').length`); n != 1 {
		t.Errorf("the storefront navigated %d times, want 1 (no reload)", n)
	}
	shop.screenshot("2-after-closing")
	shop.checkConsole()
}

// adaConversation returns the id of the demo customer Ada's conversation with subject.
func adaConversation(t *testing.T, base, subject string) string {
	t.Helper()
	var list struct {
		Conversations []struct {
			ID      string `json:"id"`
			Subject string `json:"subject"`
		} `json:"conversations"`
	}
	api(t, base, "customer", "GET", "/api/v1/chat/list", nil, &list)
	for _, c := range list.Conversations {
		if c.Subject == subject {
			return c.ID
		}
	}
	t.Fatalf("Ada has no conversation %q", subject)
	return ""
}

// TestWidgetPagesHistory opens a conversation longer than one page: the widget shows the newest
// page, and "Load earlier messages" brings the rest without moving what the shopper reads.
func TestWidgetPagesHistory(t *testing.T) {
	b := newBrowser(t)
	base := startDevStack(t, "")
	id := adaConversation(t, base, "Where is my order?")
	const extra = 35 // the demo conversation has 4 messages; a page holds 30
	for i := 1; i <= extra; i++ {
		api(t, base, "admin", "POST", "/api/v1/chat/"+id+"/messages", map[string]string{"body": fmt.Sprintf("Update %d of %d", i, extra)}, nil)
	}
	shop := b.tab(t, "shop")
	shop.navigate(base + "/")
	shop.click("the chat launcher", W+`.querySelector('.launcher')`)
	shop.click("the long conversation", W+`.querySelector('.conversations .conv[data-id="`+id+`"]')`)
	shop.waitFor("the newest page", widgetHasMessage(fmt.Sprintf("Update %d of %d", extra, extra))+` && `+W+`.querySelectorAll('.log .msg').length === 30`)
	if widgetHas := eval[bool](shop, widgetHasMessage("Great, thank you!")); widgetHas {
		t.Error("the oldest messages are shown before they are asked for")
	}
	first := `(` + W + `.querySelector('.log .msg[data-id="' + window.__first + '"]'))`
	eval[bool](shop, `(window.__first = `+W+`.querySelector('.log .msg').dataset.id, true)`)
	shop.click("Load earlier messages", W+`.querySelector('button.earlier')`)
	shop.waitFor("the whole history", W+`.querySelectorAll('.log .msg').length === 39 && `+widgetHasMessage("Great, thank you!"))
	shop.waitFor("no more pages", W+`.querySelector('button.earlier').hidden`)
	// The message that was on top stays in view: older ones went above it.
	if visible := eval[bool](shop, `(() => { const r = `+first+`.getBoundingClientRect(), s = `+W+`.querySelector('.thread').getBoundingClientRect(); return r.bottom > s.top && r.top < s.bottom; })()`); !visible {
		t.Error("loading earlier messages scrolled the message the shopper was reading out of view")
	}
	shop.screenshot("history-paged")
	shop.checkConsole()
}

// TestWidgetHeaderAndBadge checks two details of the widget's chrome. Its header says the team is
// online only while the widget is connected: offline it says it is reconnecting, and once the
// network is back it shows the support state again. The unread badges (the launcher's and the
// conversation's in the list) stay round for one, two and three characters, counts above 99
// showing as "99+".
func TestWidgetHeaderAndBadge(t *testing.T) {
	b := newBrowser(t)
	// The badge needs 100 unread messages from one admin: more than the default write rate.
	base := startDevStackWith(t, devStackOptions{env: map[string]string{"CHAT_LIMITS_WRITES_PER_MINUTE": "0"}})
	shop := b.tab(t, "shop")
	shop.navigate(base + "/")
	shop.click("the chat launcher", W+`.querySelector('.launcher')`)
	shop.waitFor("the widget's list", W+`.querySelectorAll('.conversations .conv').length === 2`)
	shop.waitFor("the live connection", `document.querySelector('support-chat').connection === 'online'`)

	subtitle := W + `.querySelector('.header .subtitle')`
	header := func(connection, text string) string {
		return `document.querySelector('support-chat').connection === ` + js(connection) + ` && !` + subtitle + `.hidden && ` + subtitle + `.textContent === ` + js(text)
	}
	api(t, base, "admin", "PUT", "/api/v1/chat/presence", map[string]string{"status": "online"}, nil)
	shop.waitFor("the header saying the team is online", header("online", "We are online"))
	shop.setOffline(true)
	shop.waitFor("the header saying the widget reconnects", header("offline", "Reconnecting…"))
	shop.screenshot("1-offline-header")
	// Presence lasts a minute: renew it so the team is still online when the shopper is back.
	api(t, base, "admin", "PUT", "/api/v1/chat/presence", map[string]string{"status": "online"}, nil)
	shop.setOffline(false)
	shop.waitFor("the header saying the team is online again", header("online", "We are online"))

	id := adaConversation(t, base, "Where is my order?")
	badge := W + `.querySelector('.launcher .badge')`
	sent := 0
	for i, tc := range []struct {
		unread   int
		text     string
		maxRatio float64
	}{
		{1, "1", 1.05},
		{42, "42", 1.05},
		{100, "99+", 1.3},
	} {
		for ; sent < tc.unread; sent++ {
			api(t, base, "admin", "POST", "/api/v1/chat/"+id+"/messages", map[string]string{"body": fmt.Sprintf("Update %d", sent+1)}, nil)
		}
		shop.waitFor("the badges showing "+tc.text, `!`+badge+`.hidden && `+badge+`.textContent === `+js(tc.text)+
			` && `+W+`.querySelector('.conversations .badge [aria-hidden]')?.textContent === `+js(tc.text))
		shop.screenshot(fmt.Sprintf("%d-badge-%d", i+2, tc.unread))
		// The conversation's badge in the list has the same shape.
		for _, where := range []string{"launcher", "conversations"} {
			size := eval[[]float64](shop, `(() => { const r = `+W+`.querySelector('.`+where+` .badge').getBoundingClientRect(); return [r.width, r.height]; })()`)
			t.Logf("the %s badge showing %q: %.1f × %.1f px", where, tc.text, size[0], size[1])
			if ratio := size[0] / size[1]; ratio < 0.95 || ratio > tc.maxRatio {
				t.Errorf("the %s badge showing %q is %.1f × %.1f px, a width/height ratio of %.2f; want 0.95 to %.2f (round)", where, tc.text, size[0], size[1], ratio, tc.maxRatio)
			}
		}
	}
	shop.checkConsole()
}
