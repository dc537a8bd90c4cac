package chat

import (
	"encoding/hex"
	"errors"
	"hash/fnv"
	"strings"
	"testing"
	"time"
)

// FuzzCursor checks the cursor codec of the list and of message history: every cursor the
// service makes decodes to what it encoded, in URL-safe characters; any string a client sends
// either decodes to a cursor that encodes and decodes to itself, or is refused with an Invalid
// error naming the parameter, never a panic.
func FuzzCursor(f *testing.F) {
	f.Add(int64(0), uint32(0), "", "")
	f.Add(int64(1764064862123), uint32(0xdeadbeef), "6745c2aa0123456789abcdef", "AQAAAZNo")
	f.Add(int64(-1), uint32(1), "\x00\xff", "AQAAAZu6RTOr3q2-7zY3NDVjMmFhMDEyMzQ1Njc4OWFiY2RlZg")
	f.Add(int64(-9223372036854775808), uint32(42), "cust-42", "AgAAAAAAAAAAAAAAAA")
	f.Add(int64(9223372036854775807), uint32(7), "é", "AQAAAAAAAAABAAAAAA\n")
	f.Fuzz(func(t *testing.T, pos int64, binding uint32, tail, s string) {
		c := cursor{pos: pos, binding: binding, tail: tail}
		enc := c.encode()
		if got, ok := parseCursor(enc); !ok || got != c {
			t.Fatalf("parseCursor(%q) = %+v, %v; want %+v (encoded from it)", enc, got, ok, c)
		}
		if i := strings.IndexFunc(enc, func(r rune) bool { return !strings.ContainsRune(base64URL, r) }); i >= 0 {
			t.Fatalf("cursor %q has %q, which a query string would need to escape", enc, enc[i])
		}

		// A list position, bound to a filter: back to itself with the filter, refused with another.
		id := objectID(tail)
		p := Position{UpdatedAt: time.UnixMilli(pos).UTC(), ID: id}
		filter := ListFilter{CustomerID: tail, TeamUnread: binding%2 == 1}
		got, err := decodeCursor(encodeCursor(p, filter), filter)
		if err != nil || !got.UpdatedAt.Equal(p.UpdatedAt) || got.ID != p.ID {
			t.Fatalf("list cursor of %+v decodes to %+v, %v", p, got, err)
		}
		other := ListFilter{CustomerID: tail + "x", TeamUnread: filter.TeamUnread}
		if filterHash(other) != filterHash(filter) {
			if _, err := decodeCursor(encodeCursor(p, filter), other); !isCursorError(err, "cursor") {
				t.Fatalf("a cursor of customer %q's list is accepted for %q's: %v", tail, other.CustomerID, err)
			}
		}
		// A history position, bound to its conversation.
		if pos >= 1 {
			if seq, err := decodeHistoryCursor(encodeHistoryCursor(pos, id), id); err != nil || seq != pos {
				t.Fatalf("history cursor of seq %d decodes to %d, %v", pos, seq, err)
			}
		}

		// Whatever a client sends.
		if parsed, ok := parseCursor(s); ok {
			if again, ok := parseCursor(parsed.encode()); !ok || again != parsed {
				t.Fatalf("parseCursor(%q) = %+v, but its encoding %q parses to %+v, %v", s, parsed, parsed.encode(), again, ok)
			}
		}
		if got, err := decodeCursor(s, filter); err == nil {
			if !isObjectID(got.ID) || got.UpdatedAt.Location() != time.UTC {
				t.Fatalf("decodeCursor(%q) = %+v: not an id and a UTC time", s, got)
			}
		} else if !isCursorError(err, "cursor") {
			t.Fatalf("decodeCursor(%q) = %v, want an Invalid error on cursor", s, err)
		}
		if seq, err := decodeHistoryCursor(s, id); err == nil {
			if seq < 1 {
				t.Fatalf("decodeHistoryCursor(%q) = %d, want a seq of at least 1", s, seq)
			}
		} else if !isCursorError(err, "before") {
			t.Fatalf("decodeHistoryCursor(%q) = %v, want an Invalid error on before", s, err)
		}
	})
}

// base64URL is the alphabet of cursors: base64url without padding, safe in a query string.
const base64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// objectID derives a conversation id (24 lowercase hex digits) from s.
func objectID(s string) string {
	h := fnv.New128a()
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// isCursorError reports whether err is the Invalid error of the query parameter field.
func isCursorError(err error, field string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == Invalid && e.Field == field
}
