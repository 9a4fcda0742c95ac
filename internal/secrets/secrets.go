// Package secrets generates credentials (sethvargo/go-password), encrypts
// them at rest (filippo.io/age) to the workspace identity and any extra
// recipients (such as the new MSP's age or SSH key), and decrypts them.
package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"github.com/sethvargo/go-password/password"
)

// IdentityFile is the workspace identity's file name in the state directory.
const IdentityFile = "identity.age-key"

// Options of a generated secret.
type Options struct {
	Length      int
	Digits      int
	Symbols     int
	NoUpper     bool
	AllowRepeat bool
}

// DefaultOptions: 32 characters, 6 digits, 4 symbols, repeats allowed.
var DefaultOptions = Options{Length: 32, Digits: 6, Symbols: 4, AllowRepeat: true}

// Check reports options go-password cannot satisfy, in words.
func (o Options) Check() error {
	switch {
	case o.Length < 8 || o.Length > 256:
		return fmt.Errorf("length must be between 8 and 256, not %d", o.Length)
	case o.Digits < 0 || o.Symbols < 0:
		return errors.New("digits and symbols cannot be negative")
	case o.Digits+o.Symbols > o.Length:
		return fmt.Errorf("digits (%d) and symbols (%d) do not fit in length %d", o.Digits, o.Symbols, o.Length)
	}
	return nil
}

// Generate returns a new random credential.
func Generate(o Options) (string, error) {
	if err := o.Check(); err != nil {
		return "", err
	}
	pw, err := password.Generate(o.Length, o.Digits, o.Symbols, o.NoUpper, o.AllowRepeat)
	if err != nil {
		return "", fmt.Errorf("cannot generate a secret with these options: %v", err)
	}
	return pw, nil
}

// LoadOrCreateIdentity reads the workspace identity in dir, creating it
// (mode 0600) on first use. created says whether it was made now.
func LoadOrCreateIdentity(dir string) (id *age.X25519Identity, created bool, err error) {
	path := filepath.Join(dir, IdentityFile)
	id, err = LoadIdentity(path)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	id, err = age.GenerateX25519Identity()
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	// Write a complete file under a temporary name, make it durable, then
	// link it into place: a crash leaves no identity or a whole one, never
	// an empty one; link fails if another process made one first.
	f, err := os.CreateTemp(dir, ".identity-*")
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(f.Name())
	content := "# switchover workspace identity: decrypts this workspace's secrets. Keep it private.\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	_, werr := f.WriteString(content)
	cerr := f.Chmod(0o600)
	serr := f.Sync()
	if err := errors.Join(werr, cerr, serr, f.Close()); err != nil {
		return nil, false, err
	}
	if err := os.Link(f.Name(), path); errors.Is(err, os.ErrExist) {
		id, err := LoadIdentity(path) // another process made it first
		return id, false, err
	} else if err != nil {
		return nil, false, err
	}
	if d, err := os.Open(dir); err == nil {
		serr := d.Sync()
		_ = d.Close()
		if serr != nil {
			return nil, false, fmt.Errorf("making the identity durable: %w", serr)
		}
	}
	return id, true, nil
}

// LoadIdentity reads an age identity file.
func LoadIdentity(path string) (*age.X25519Identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			return x, nil
		}
	}
	return nil, fmt.Errorf("%s holds no age X25519 identity", path)
}

// ParseRecipient reads an age public key (age1...) or an SSH public key
// (ssh-ed25519 or ssh-rsa).
func ParseRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "ssh-") {
		return agessh.ParseRecipient(s)
	}
	return age.ParseX25519Recipient(s)
}

// Encrypt encrypts plaintext to every recipient.
func Encrypt(plaintext []byte, recipients ...age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipients...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decrypt decrypts with the identity.
func Decrypt(ciphertext []byte, id age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(ciphertext), id)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// LoadAnyIdentity reads an age identity file or an unencrypted SSH private
// key (ed25519 or RSA): what a new provider decrypts a handover bundle with.
func LoadAnyIdentity(path string) (age.Identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(b, []byte("PRIVATE KEY-----")) {
		id, err := agessh.ParseIdentity(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		return id, nil
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return ids[0], nil
}
