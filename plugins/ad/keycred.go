package ad

import (
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// keyCredential is one msDS-KeyCredentialLink value (shadow credentials):
// a DN-Binary "B:<hex length>:<KEYCREDENTIALLINK_BLOB in hex>:<DN>",
// [MS-ADTS] 2.2.20.
type keyCredential struct {
	raw      string
	deviceID string
	created  time.Time
	keyID    string
	usage    string
}

// parseKeyCredential reads what a person needs to tell one key from
// another: its device, its creation time and its key ID. A blob it cannot
// read is still a value (and still listed).
func parseKeyCredential(v string) keyCredential {
	k := keyCredential{raw: v}
	parts := strings.SplitN(v, ":", 4)
	if len(parts) != 4 || parts[0] != "B" {
		return k
	}
	n, err := strconv.Atoi(parts[1])
	b, err2 := hex.DecodeString(parts[2])
	if err != nil || err2 != nil || n != len(parts[2]) || len(b) < 4 || binary.LittleEndian.Uint32(b) != 0x200 {
		return k
	}
	for p := 4; p+3 <= len(b); {
		l, id := int(binary.LittleEndian.Uint16(b[p:])), b[p+2]
		if p+3+l > len(b) {
			break
		}
		val := b[p+3 : p+3+l]
		switch {
		case id == 0x01:
			k.keyID = hex.EncodeToString(val)
		case id == 0x04 && l == 1:
			k.usage = map[byte]string{0x01: "NGC (Windows Hello / shadow credentials)", 0x07: "FIDO", 0x08: "file encryption key"}[val[0]]
		case id == 0x06 && l == 16:
			k.deviceID = readGUID(val)
		case id == 0x09 && l == 8:
			k.created = fileTime(strconv.FormatInt(int64(binary.LittleEndian.Uint64(val)), 10))
		}
		p += 3 + l
	}
	return k
}

// describe is the key for a person: device, creation time, key ID.
func (k keyCredential) describe() string {
	var parts []string
	if k.deviceID != "" {
		parts = append(parts, "device "+k.deviceID)
	}
	if !k.created.IsZero() {
		parts = append(parts, "created "+rfc3339(k.created))
	}
	if k.usage != "" {
		parts = append(parts, "usage "+k.usage)
	}
	if k.keyID != "" {
		parts = append(parts, "key ID "+truncateChars(k.keyID, 16))
	}
	if len(parts) == 0 {
		return "a key credential switchover cannot read"
	}
	return strings.Join(parts, ", ")
}
