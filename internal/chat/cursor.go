package chat

import (
	"encoding/base64"
	"encoding/binary"
)

// cursorVersion is the first byte of every cursor, so the format can change.
const cursorVersion = 1

// cursor is the recipe of every opaque cursor of the API: a version byte, a position number
// (a time in milliseconds, or a sequence number), the hash binding the cursor to the query it
// was made for, and an optional tail (an id), base64url without padding.
type cursor struct {
	pos     int64
	binding uint32
	tail    string
}

func (c cursor) encode() string {
	b := make([]byte, 1+8+4, 1+8+4+len(c.tail))
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(c.pos)) //nolint:gosec // the bit pattern; parseCursor turns it back
	binary.BigEndian.PutUint32(b[9:13], c.binding)
	return base64.RawURLEncoding.EncodeToString(append(b, c.tail...))
}

// parseCursor decodes a cursor made by encode; ok is false for anything else.
func parseCursor(s string) (c cursor, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) < 1+8+4 || raw[0] != cursorVersion {
		return cursor{}, false
	}
	pos := int64(binary.BigEndian.Uint64(raw[1:9])) //nolint:gosec // undoes encode's conversion
	return cursor{pos: pos, binding: binary.BigEndian.Uint32(raw[9:13]), tail: string(raw[13:])}, true
}
