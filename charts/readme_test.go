package charts

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the values table of charts/support-chat/README.md from values.yaml")

const (
	tableStart = "<!-- values-table:start (generated from values.yaml by `go test ./charts/ -run TestReadmeValuesTable -update`) -->"
	tableEnd   = "<!-- values-table:end -->"
)

// TestReadmeValuesTable keeps the README's values table equal to the `# --` comments of
// values.yaml (a small helm-docs), and requires every key to be documented.
func TestReadmeValuesTable(t *testing.T) {
	rows, undocumented := valuesRows(t, mustRead(t, filepath.Join(chartDir, "values.yaml")))
	for _, key := range undocumented {
		t.Errorf("values.yaml key %s has no `# --` description", key)
	}
	var table strings.Builder
	table.WriteString("| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n")
	for _, r := range rows {
		fmt.Fprintf(&table, "| `%s` | %s | %s | %s |\n", r.key, r.typ, r.def, r.desc)
	}

	path := filepath.Join(chartDir, "README.md")
	readme := string(mustRead(t, path))
	before, rest, ok1 := strings.Cut(readme, tableStart)
	_, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s lacks the markers %q ... %q", path, tableStart, tableEnd)
	}
	want := before + tableStart + "\n" + table.String() + tableEnd + after
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if readme != want {
		t.Errorf("%s values table is out of date with values.yaml; run: go test ./charts/ -run TestReadmeValuesTable -update", path)
	}
}

type valuesRow struct{ key, typ, def, desc string }

// valuesRows walks values.yaml: a key with a `# --` comment is one row (objects included, as
// helm-docs does); an undocumented object is walked into; an undocumented leaf is reported.
func valuesRows(tb testing.TB, src []byte) (rows []valuesRow, undocumented []string) {
	tb.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		tb.Fatalf("values.yaml: %v", err)
	}
	var walk func(prefix string, m *yaml.Node)
	walk = func(prefix string, m *yaml.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			desc := description(k.HeadComment)
			if desc == "" && v.Kind == yaml.MappingNode && len(v.Content) > 0 {
				walk(key+".", v)
				continue
			}
			if desc == "" {
				undocumented = append(undocumented, key)
			}
			var val any
			if err := v.Decode(&val); err != nil {
				tb.Fatalf("values.yaml %s: %v", key, err)
			}
			def, err := json.Marshal(val)
			if err != nil {
				tb.Fatalf("values.yaml %s: %v", key, err)
			}
			rows = append(rows, valuesRow{key: key, typ: typeName(val), def: "`" + cell(string(def)) + "`", desc: cell(desc)})
		}
	}
	walk("", doc.Content[0])
	return rows, undocumented
}

// description returns the text of the last `# --` block of a head comment.
func description(comment string) string {
	var desc []string
	in := false
	for _, line := range strings.Split(comment, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "# --"):
			desc, in = []string{strings.TrimSpace(strings.TrimPrefix(line, "# --"))}, true
		case in && strings.HasPrefix(line, "#"):
			desc = append(desc, strings.TrimSpace(strings.TrimPrefix(line, "#")))
		default:
			in = false
		}
	}
	return strings.Join(desc, " ")
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int, int64, uint64:
		return "int"
	case float64:
		return "float"
	case bool:
		return "bool"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func cell(s string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte("|"), []byte(`\|`)))
}
