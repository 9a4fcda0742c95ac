// Package plans is the saved plan file: what `plan -out` writes and `apply`
// reads. It holds the runbook's content hash, the variable values (sensitive
// ones only as a salted, slow hash) and every instance's plan, so that apply
// can refuse a runbook or variables that changed since.
package plans

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/switchover/switchover/internal/fsutil"
)

// FormatVersion of the plan file.
const FormatVersion = 2

// magic starts every plan file (before the gzip stream), so that a wrong
// file is refused with a clear message.
const magic = "switchover-plan\n"

// Plan is a saved plan.
type Plan struct {
	FormatVersion     int                 `json:"format_version"`
	SwitchoverVersion string              `json:"switchover_version"`
	CreatedAt         time.Time           `json:"created_at"`
	Runbook           RunbookRef          `json:"runbook"`
	Variables         map[string]Variable `json:"variables"`
	Targets           []string            `json:"targets,omitempty"`
	// StateSerial is the number of state records when the plan was made:
	// apply refuses the plan when the state changed since.
	StateSerial int        `json:"state_serial"`
	Instances   []Instance `json:"instances"`
}

// RunbookRef identifies the runbook a plan was made from.
type RunbookRef struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
	Hash string `json:"hash"`
}

// Variable is one variable's value. A sensitive value is never stored: only
// an Argon2id hash with a random salt, so apply can tell whether the value it
// is given again is the same.
type Variable struct {
	Value     json.RawMessage `json:"value,omitempty"` // cty JSON with type
	Sensitive bool            `json:"sensitive,omitempty"`
	Hash      string          `json:"hash,omitempty"`
}

// Instance is one step instance's plan, as the plan file holds it and, with
// Public, as `plan -json` shows it.
type Instance struct {
	Address string   `json:"address"`
	Step    string   `json:"step"`
	Key     string   `json:"key,omitempty"`
	Plugin  string   `json:"plugin"`
	Action  string   `json:"action"` // plugin.action
	Kind    Action   `json:"kind"`
	Summary string   `json:"summary"`
	Details []string `json:"details,omitempty"`
	// Private is the plugin's own data for Apply: saved in the plan file
	// (authenticated), never shown.
	Private []byte `json:"private,omitempty"`
}

// Public is the instance without what only apply may read.
func (in Instance) Public() Instance {
	in.Private = nil
	return in
}

// HashSecret returns a salted Argon2id hash of a sensitive value.
func HashSecret(value []byte) string {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic(err) // the OS random source does not fail
	}
	return encodeHash(salt, value)
}

func encodeHash(salt, value []byte) string {
	h := argon2.IDKey(value, salt, 1, 19*1024, 1, 32)
	return "argon2id$" + base64.RawStdEncoding.EncodeToString(salt) + "$" + base64.RawStdEncoding.EncodeToString(h)
}

// SecretMatches reports whether value has the given hash.
func SecretMatches(hash string, value []byte) bool {
	parts := strings.SplitN(hash, "$", 3)
	if len(parts) != 3 || parts[0] != "argon2id" {
		return false
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(encodeHash(salt, value)), []byte(hash)) == 1
}

// macPrefix starts the line after the magic: the HMAC-SHA256 of the gzip
// stream that follows, keyed by the workspace's plan key.
const macPrefix = "hmac-sha256 "

// ErrUnauthenticated: the plan file's MAC does not match this workspace's
// key (edited after it was written, or made in another workspace).
var ErrUnauthenticated = errors.New("the plan file is not authentic")

// Write saves p to path atomically (temporary file, fsync, rename), mode
// 0600, authenticated with key (see workspace.PlanKey).
func Write(path string, p *Plan, key []byte) error {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if err := json.NewEncoder(zw).Encode(p); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString(magic)
	buf.WriteString(macPrefix + hex.EncodeToString(mac(key, z.Bytes())) + "\n")
	buf.Write(z.Bytes())
	return fsutil.WriteFileAtomic(path, buf.Bytes(), 0o600)
}

func mac(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// File is a plan file read but not yet authenticated: its runbook directory
// says which workspace's key to check it with.
type File struct {
	Path    string
	Plan    *Plan
	mac     []byte
	payload []byte
}

// Authenticate checks the file's MAC with key; only then may the plan be
// applied.
func (f *File) Authenticate(key []byte) error {
	if !hmac.Equal(f.mac, mac(key, f.payload)) {
		return fmt.Errorf("%w: %s was changed after it was written, or was made for another workspace; nothing was applied. Make a new plan with switchover plan -out", ErrUnauthenticated, f.Path)
	}
	return nil
}

// maxPlanBytes bounds a plan unpacked (it is read before it can be
// authenticated, since its runbook says which key to check it with).
const maxPlanBytes = 512 << 20

// Read loads a plan file; Authenticate it before use.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(b, []byte(magic)) {
		return nil, fmt.Errorf("%s is not a switchover plan file", path)
	}
	b = b[len(magic):]
	line, rest, ok := bytes.Cut(b, []byte("\n"))
	sum, herr := hex.DecodeString(strings.TrimPrefix(string(line), macPrefix))
	if !ok || !bytes.HasPrefix(line, []byte(macPrefix)) || herr != nil {
		return nil, fmt.Errorf("%w: %s carries no valid authentication line (made by an older switchover, or damaged); make a new plan", ErrUnauthenticated, path)
	}
	f := &File{Path: path, mac: sum, payload: rest}
	zr, err := gzip.NewReader(bytes.NewReader(rest))
	if err != nil {
		return nil, fmt.Errorf("%s: damaged plan file: %v", path, err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxPlanBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: damaged plan file: %v", path, err)
	}
	if len(raw) > maxPlanBytes {
		return nil, fmt.Errorf("%s: the plan is larger than %d MiB unpacked; this is not a plan switchover wrote", path, maxPlanBytes>>20)
	}
	var p Plan
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("%s: damaged plan file: %v", path, err)
	}
	if p.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%s: plan file format %d; this switchover reads format %d", path, p.FormatVersion, FormatVersion)
	}
	f.Plan = &p
	return f, nil
}
