package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"filippo.io/age"
)

func TestGenerateHonoursOptions(t *testing.T) {
	pw, err := Generate(Options{Length: 24, Digits: 5, Symbols: 3, NoUpper: true, AllowRepeat: true})
	if err != nil {
		t.Fatal(err)
	}
	digits, upper := 0, 0
	for _, r := range pw {
		if unicode.IsDigit(r) {
			digits++
		}
		if unicode.IsUpper(r) {
			upper++
		}
	}
	if len(pw) != 24 || digits != 5 || upper != 0 {
		t.Fatalf("%d chars, %d digits, %d upper", len(pw), digits, upper)
	}
	if _, err := Generate(Options{Length: 4}); err == nil || !strings.Contains(err.Error(), "between 8 and 256") {
		t.Fatalf("short length: %v", err)
	}
	if _, err := Generate(Options{Length: 8, Digits: 6, Symbols: 6}); err == nil {
		t.Fatal("impossible options accepted")
	}
}

func TestIdentityCreatedOnceWithMode0600AndRoundTrip(t *testing.T) {
	dir := t.TempDir()
	id, created, err := LoadOrCreateIdentity(dir)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	st, _ := os.Stat(filepath.Join(dir, IdentityFile))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("identity mode %v", st.Mode().Perm())
	}
	again, created, err := LoadOrCreateIdentity(dir)
	if err != nil || created || again.String() != id.String() {
		t.Fatal("identity not reused")
	}
	other, _ := age.GenerateX25519Identity()
	ct, err := Encrypt([]byte("hunter2-canary"), id.Recipient(), other.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ct), "hunter2") {
		t.Fatal("ciphertext holds the plaintext")
	}
	for _, who := range []age.Identity{id, other} {
		pt, err := Decrypt(ct, who)
		if err != nil || string(pt) != "hunter2-canary" {
			t.Fatalf("decrypt: %q %v", pt, err)
		}
	}
	stranger, _ := age.GenerateX25519Identity()
	if _, err := Decrypt(ct, stranger); err == nil {
		t.Fatal("a stranger decrypted the secret")
	}
}

func TestParseRecipientAcceptsSSHKeys(t *testing.T) {
	if _, err := ParseRecipient("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN new-msp"); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRecipient("age1notakey"); err == nil {
		t.Fatal("bad recipient accepted")
	}
}
