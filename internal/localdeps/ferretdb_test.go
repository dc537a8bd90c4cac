package localdeps

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestQuietHandlerDropsOnlyResponseDumps(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(quietHandler{slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})}).With("name", "conn")
	log.Warn("Response header: length: 146, id: 10, response_to: 22, opcode: OP_MSG")
	log.Warn(`Response message:` + "\n" + `{"ok": 0.0, "errmsg": "no such command: 'endSessions'"}`)
	log.Error("Failed to sync file")
	log.Info("listening")

	got := out.String()
	if strings.Contains(got, "Response") || strings.Contains(got, "endSessions") {
		t.Errorf("a response dump got through:\n%s", got)
	}
	if !strings.Contains(got, "Failed to sync file") || !strings.Contains(got, "name=conn") {
		t.Errorf("FerretDB's own error is missing:\n%s", got)
	}
}
