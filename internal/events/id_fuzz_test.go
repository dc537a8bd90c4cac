package events_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/supportchat/supportchat/internal/events"
)

// FuzzParseID checks the parsing of event ids, which clients send back in Last-Event-ID: no
// panic on any header value; every id the stream issues ("<ms>-<seq>") parses to its numbers;
// an accepted id is at most 41 bytes and names the same position as its canonical form; and
// Less orders ids as their (ms, seq) pairs, strictly.
func FuzzParseID(f *testing.F) {
	f.Add("1764064862123-0", uint64(1764064862123), uint64(0), "1764064862123-1")
	f.Add("0-0", uint64(0), uint64(0), "0-1")
	f.Add("18446744073709551615-18446744073709551615", uint64(18446744073709551615), uint64(18446744073709551615), "1-1")
	f.Add("18446744073709551616-0", uint64(1), uint64(2), "-1")
	f.Add("001-01", uint64(1), uint64(1), "1-1")
	f.Add(" 1-1", uint64(2), uint64(0), "+1-1")
	f.Add("$", uint64(0), uint64(1), "1764064862123")
	f.Fuzz(func(t *testing.T, header string, ms, seq uint64, other string) {
		issued := strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq, 10)
		if gotMS, gotSeq, ok := events.ParseID(issued); !ok || gotMS != ms || gotSeq != seq {
			t.Fatalf("ParseID(%q) = %d, %d, %v; want %d, %d, true", issued, gotMS, gotSeq, ok, ms, seq)
		}
		if events.Less(issued, issued) {
			t.Fatalf("Less(%q, %q) is true", issued, issued)
		}

		// What the stream reads from Last-Event-ID.
		id := strings.TrimSpace(header)
		hms, hseq, ok := events.ParseID(id)
		if !ok {
			return
		}
		if len(id) > 41 {
			t.Fatalf("ParseID accepts %q, %d bytes; ids are at most 41", id, len(id))
		}
		canonical := strconv.FormatUint(hms, 10) + "-" + strconv.FormatUint(hseq, 10)
		if cms, cseq, ok := events.ParseID(canonical); !ok || cms != hms || cseq != hseq {
			t.Fatalf("ParseID(%q) = %d-%d, but its canonical form %q parses to %d, %d, %v", id, hms, hseq, canonical, cms, cseq, ok)
		}
		if id != canonical && !hasLeadingZero(id) {
			t.Fatalf("ParseID accepts %q as %q: only leading zeros may differ", id, canonical)
		}
		if events.Less(id, canonical) || events.Less(canonical, id) {
			t.Fatalf("Less orders %q and its canonical form %q", id, canonical)
		}
		want := hms < ms || hms == ms && hseq < seq
		if got := events.Less(id, issued); got != want {
			t.Fatalf("Less(%q, %q) = %v, want %v", id, issued, got, want)
		}
		if events.Less(id, issued) && events.Less(issued, id) {
			t.Fatalf("Less(%q, %q) and Less(%q, %q) are both true", id, issued, issued, id)
		}
		if oms, oseq, ok := events.ParseID(other); ok {
			want := hms < oms || hms == oms && hseq < oseq
			if got := events.Less(id, other); got != want {
				t.Fatalf("Less(%q, %q) = %v, want %v", id, other, got, want)
			}
		}
	})
}

// hasLeadingZero reports whether one of the two numbers of id is written with a leading zero.
func hasLeadingZero(id string) bool {
	a, b, _ := strings.Cut(id, "-")
	return len(a) > 1 && a[0] == '0' || len(b) > 1 && b[0] == '0'
}
