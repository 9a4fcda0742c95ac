package plans

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestActionWordsRoundTrip(t *testing.T) {
	for a := Change; a <= Failed; a++ {
		b, err := a.MarshalText()
		if err != nil {
			t.Fatalf("%d: %v", a, err)
		}
		var back Action
		if err := back.UnmarshalText(b); err != nil || back != a {
			t.Fatalf("%s: round trip gave %v, %v", b, back, err)
		}
		if a.Symbol() == "x" && a != Failed {
			t.Errorf("%s has no symbol", a)
		}
	}
	if _, err := Invalid.MarshalText(); err == nil {
		t.Error("the zero action was saved")
	}
	if _, err := ParseAction("invalid"); err == nil {
		t.Error(`"invalid" parsed`)
	}
	if _, err := ParseAction("destroy"); err == nil || !strings.Contains(err.Error(), `"destroy"`) {
		t.Errorf("unknown word: %v", err)
	}
}

func TestCounts(t *testing.T) {
	var c Counts
	for _, a := range []Action{Change, Drift, Deferred, Manual, NoChange, Done, Skipped, Failed, Failed} {
		c.Add(a)
	}
	want := Counts{Change: 3, Manual: 1, NoChange: 2, Skipped: 1, Failed: 2}
	if c != want {
		t.Fatalf("counts = %+v, want %+v", c, want)
	}
	if !Drift.Changes() || !Deferred.Changes() || Done.Changes() || Manual.Changes() {
		t.Error("Changes is wrong")
	}
}

func samplePlan() *Plan {
	return &Plan{
		FormatVersion: FormatVersion, SwitchoverVersion: "test", CreatedAt: time.Unix(1700000000, 0).UTC(),
		Runbook:   RunbookRef{Name: "rb", Dir: "/srv/rb", Hash: "abc"},
		Variables: map[string]Variable{"admin": {Sensitive: true, Hash: HashSecret([]byte(`"s3cret"`))}},
		Instances: []Instance{{Address: "step.k", Step: "k", Plugin: "ssh", Action: "ssh.authorized_keys", Kind: Drift,
			Summary: "remove 1 key", Private: []byte(`{"path":"/root/.ssh/authorized_keys"}`)}},
	}
}

func TestWriteReadAuthenticate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plan")
	key := []byte("0123456789abcdef0123456789abcdef")
	if err := Write(path, samplePlan(), key); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v", fi.Mode())
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Authenticate(key); err != nil {
		t.Fatal(err)
	}
	in := f.Plan.Instances[0]
	if in.Kind != Drift || string(in.Private) != `{"path":"/root/.ssh/authorized_keys"}` {
		t.Fatalf("instance = %+v", in)
	}
	if err := f.Authenticate([]byte("another workspace's key, 32 byte")); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("wrong key: %v", err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("s3cret")) {
		t.Fatal("a sensitive variable is in the plan file")
	}
}

// The attack from the security review: unpack, edit the private data, pack
// again. Read still parses it; Authenticate refuses it.
func TestEditedPlanIsNotAuthentic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plan")
	key := []byte("0123456789abcdef0123456789abcdef")
	if err := Write(path, samplePlan(), key); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	head, z, _ := bytes.Cut(raw[len(magic):], []byte("\n"))
	zr, _ := gzip.NewReader(bytes.NewReader(z))
	var p Plan
	if err := json.NewDecoder(zr).Decode(&p); err != nil {
		t.Fatal(err)
	}
	p.Instances[0].Private = []byte(`{"path":"/etc/sudoers.d/README","new":"oldmsp ALL=(ALL) NOPASSWD: ALL\n"}`)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_ = json.NewEncoder(zw).Encode(&p)
	_ = zw.Close()
	edited := append([]byte(magic), head...)
	edited = append(append(edited, '\n'), buf.Bytes()...)
	if err := os.WriteFile(path, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Authenticate(key); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "nothing was applied") {
		t.Fatalf("edited plan: %v", err)
	}
}

func TestReadRefusesWhatIsNotAPlan(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"not a plan":   "hello\n",
		"no mac line":  magic + "garbage",
		"damaged gzip": magic + macPrefix + "00\nnot gzip",
	}
	for name, content := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(path); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
}

func TestSecretHash(t *testing.T) {
	h := HashSecret([]byte("pw"))
	if !SecretMatches(h, []byte("pw")) || SecretMatches(h, []byte("pW")) {
		t.Fatal("hash does not tell values apart")
	}
	if h == HashSecret([]byte("pw")) {
		t.Fatal("the hash is not salted")
	}
	if SecretMatches("md5$x$y", []byte("pw")) || SecretMatches("", []byte("")) {
		t.Fatal("a malformed hash matched")
	}
}
