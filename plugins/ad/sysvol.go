package ad

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf16"
)

// sysvolHit is one line of a SYSVOL file naming the old provider.
type sysvolHit struct {
	path, gpo, kind, mention, text string
	line                           int
}

var gpoGUID = regexp.MustCompile(`(?i)\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}`)

// sysvolKind says what a SYSVOL file is to a person.
func sysvolKind(path string) string {
	lower := strings.ToLower(filepath.ToSlash(path))
	switch {
	case strings.Contains(lower, "/scheduledtasks/"):
		return "scheduled task"
	case strings.HasSuffix(lower, "/scripts.ini"), strings.HasSuffix(lower, "/psscripts.ini"):
		return "logon/startup script setting"
	case strings.Contains(lower, "/scripts/"):
		return "script"
	case strings.Contains(lower, "/preferences/"):
		return "group policy preference"
	}
	return "file"
}

// scanSysvol reads every file under root up to 4 MiB (UTF-16 ones too:
// scripts.ini is UTF-16) and returns the lines that name a mention,
// case-insensitively, each file once per mention.
func scanSysvol(root string, mentions []string) ([]sysvolHit, error) {
	if len(mentions) == 0 {
		return nil, nil
	}
	var hits []sysvolHit
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() > 4<<20 {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text := strings.ToLower(decodeText(b))
		for _, m := range mentions {
			lm := strings.ToLower(m)
			if lm == "" || !strings.Contains(text, lm) {
				continue
			}
			h := sysvolHit{path: path, gpo: gpoGUID.FindString(path), kind: sysvolKind(path), mention: m}
			if h.gpo == "" {
				h.gpo = "(none: NETLOGON or another folder)"
			}
			sc := bufio.NewScanner(strings.NewReader(decodeText(b)))
			sc.Buffer(make([]byte, 64<<10), 4<<20)
			for n := 1; sc.Scan(); n++ {
				if strings.Contains(strings.ToLower(sc.Text()), lm) {
					h.line, h.text = n, strings.TrimSpace(sc.Text())
					break
				}
			}
			hits = append(hits, h)
		}
		return nil
	})
	return hits, err
}

// decodeText reads UTF-16 (with its byte order mark) as Windows writes
// scripts.ini, and anything else as it is.
func decodeText(b []byte) string {
	if len(b) >= 2 && (bytes.HasPrefix(b, []byte{0xff, 0xfe}) || bytes.HasPrefix(b, []byte{0xfe, 0xff})) {
		be := b[0] == 0xfe
		u := make([]uint16, 0, len(b)/2)
		for i := 2; i+1 < len(b); i += 2 {
			if be {
				u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
			} else {
				u = append(u, uint16(b[i+1])<<8|uint16(b[i]))
			}
		}
		return string(utf16.Decode(u))
	}
	return string(b)
}
