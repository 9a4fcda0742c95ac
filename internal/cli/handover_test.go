package cli

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/switchover/switchover/internal/handover"
)

// A run with a done step (that set a secret), a failed one, one waiting for
// a person and a skipped one; its checklist in the three formats, the
// bundle, opened by the new provider, refused with a wrong identity and
// when damaged, and the receipt.
func TestHandoverOfARun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
step "test.account" "root" {
  world    = local.world
  account  = "root"
  password = secret("root@host01")
}
step "test.flaky" "broken" {
  world      = local.world
  name       = "broken"
  fail_times = 9
  on_failure = continue
}
step "core.manual" "registrar" {
  instructions = "Move the domain to the client's own registrar account."
  confirm_by   = "the office manager"
}
step "core.noop" "off" {
  message = "x"
  when    = false
}
handover {
  item "Change the break-glass account's password" {
    owner = "NewMSP"
    due   = "first week"
  }
}
`)
	f.apply()
	secret := secretValue(t, f.dir, "root@host01")
	formats := map[string]string{}
	for _, format := range []string{"md", "html", "json"} {
		code, out, errs := f.run("handover", "-format", format, f.dir)
		if code != ExitOK {
			t.Fatalf("handover -format %s: exit %d %s", format, code, errs)
		}
		if strings.Contains(out, secret) {
			t.Fatalf("the %s checklist shows the secret's value", format)
		}
		formats[format] = out
	}
	var c struct {
		OpenItems []struct{ Kind, Step, Owner string } `json:"open_items"`
		Secrets   []struct {
			Name     string
			Verified bool
		}
	}
	if err := json.Unmarshal([]byte(formats["json"]), &c); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, it := range c.OpenItems {
		kinds = append(kinds, it.Kind+":"+it.Step+":"+it.Owner)
	}
	if got := strings.Join(kinds, " "); got != "failed:step.broken: waiting_for_person:step.registrar:the office manager skipped:step.off: task::NewMSP" {
		t.Fatalf("open items: %s", got)
	}
	if len(c.Secrets) != 1 || c.Secrets[0].Name != "root@host01" || !c.Secrets[0].Verified {
		t.Fatalf("secrets: %+v", c.Secrets)
	}
	checkHTMLInChromium(t, formats["html"], []string{"Open items (4)", "step.registrar", "the office manager", "break-glass", "root@host01"})

	// The bundle, to the new provider's key.
	id, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(t.TempDir(), "newmsp.key")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	bundle := filepath.Join(t.TempDir(), "handover.bundle")
	code, out, errs := f.run("handover", "bundle", "-recipient", id.Recipient().String(), "-out", bundle, f.dir)
	if code != ExitOK {
		t.Fatalf("bundle: %d %s %s", code, out, errs)
	}
	// The fingerprint and the hash to read out.
	signer := regexp.MustCompile(`signed by  (SHA256:\S+)`).FindStringSubmatch(out)
	if signer == nil || !regexp.MustCompile(`sha256     [0-9a-f]{64}`).MatchString(out) {
		t.Fatalf("bundle does not print its signer and hash:\n%s", out)
	}
	raw, _ := os.ReadFile(bundle)
	if strings.Contains(string(raw), secret) {
		t.Fatal("the bundle holds the secret in clear")
	}
	outDir := filepath.Join(t.TempDir(), "opened")
	code, out, errs = f.run("handover", "open", bundle, "-identity", idFile, "-signer", signer[1], "-out", outDir)
	if code != ExitOK || !strings.Contains(out, "every part matches the manifest") || !strings.Contains(out, "Signed by     "+signer[1]) {
		t.Fatalf("open: %d %s %s", code, out, errs)
	}
	// Without -signer it says who signed, and does not call it genuine.
	if code, out, errs := f.run("handover", "open", bundle, "-identity", idFile); code == ExitOK || !strings.Contains(out, signer[1]) || !strings.Contains(errs, "give -signer") {
		t.Fatalf("open without -signer: %d %s %s", code, out, errs)
	}
	// Forged: another workspace, anyone with the new provider's public key,
	// makes a bundle to the same recipient: its signer is not the one read
	// out, and it is refused.
	forger := newFixture(t, `
step "core.noop" "x" { message = "forged" }
`)
	if code, out := forger.apply(); code != ExitOK {
		t.Fatalf("forger's apply: %d %s", code, out)
	}
	forged := filepath.Join(t.TempDir(), "forged.bundle")
	if code, out, errs := forger.run("handover", "bundle", "-recipient", id.Recipient().String(), "-out", forged, forger.dir); code != ExitOK {
		t.Fatalf("forged bundle: %d %s %s", code, out, errs)
	}
	if code, _, errs := f.run("handover", "open", forged, "-identity", idFile, "-signer", signer[1]); code == ExitOK || !strings.Contains(errs, "not by "+signer[1]) {
		t.Fatalf("a forged bundle: %d %s", code, errs)
	}
	// The signature taken out: unsigned, refused.
	unsigned := filepath.Join(t.TempDir(), "unsigned.bundle")
	os.WriteFile(unsigned, stripTarEntry(t, raw, handover.SignatureName), 0o600)
	if code, _, errs := f.run("handover", "open", unsigned, "-identity", idFile, "-signer", signer[1]); code == ExitOK || !strings.Contains(errs, "not signed") {
		t.Fatalf("an unsigned bundle: %d %s", code, errs)
	}
	var delivered map[string]string
	b, _ := os.ReadFile(filepath.Join(outDir, "secrets.json"))
	if json.Unmarshal(b, &delivered); delivered["root@host01"] != secret {
		t.Fatal("the bundle does not deliver the secret")
	}
	// A wrong identity; a changed byte (named).
	other, _ := age.GenerateX25519Identity()
	otherFile := filepath.Join(t.TempDir(), "other.key")
	os.WriteFile(otherFile, []byte(other.String()+"\n"), 0o600)
	if code, _, errs := f.run("handover", "open", bundle, "-identity", otherFile, "-signer", signer[1]); code == ExitOK || !strings.Contains(errs, "not encrypted to this identity") {
		t.Fatalf("a wrong identity: %d %s", code, errs)
	}
	damaged := filepath.Join(t.TempDir(), "damaged.bundle")
	i := strings.Index(string(raw), "secrets.json.age")
	raw[i+512+150] ^= 0x40 // inside the secrets part's ciphertext (after its 512-byte tar header)
	os.WriteFile(damaged, raw, 0o600)
	if code, _, errs := f.run("handover", "open", damaged, "-identity", idFile, "-signer", signer[1]); code == ExitOK || !strings.Contains(errs, "BAD secrets.json") {
		t.Fatalf("a damaged bundle: %d %s", code, errs)
	}
	// The receipt, then the checklist shows it and secrets show warns.
	if code, _, errs := f.run("handover", "receipt", "-by", "NewMSP (Jo)", "-bundle", bundle, f.dir); code != ExitOK {
		t.Fatalf("receipt: %s", errs)
	}
	// A bundle another workspace made: refused.
	if code, _, errs := f.run("handover", "receipt", "-by", "x", "-bundle", forged, f.dir); code == ExitOK || !strings.Contains(errs, "not a bundle this workspace made") {
		t.Fatalf("a receipt for the forged bundle: %d %s", code, errs)
	}
	// An older bundle replayed: taken (it was made here), with a note
	// that a newer one exists.
	newer := filepath.Join(t.TempDir(), "newer.bundle")
	if code, out, errs := f.run("handover", "bundle", "-recipient", id.Recipient().String(), "-out", newer, f.dir); code != ExitOK {
		t.Fatalf("a second bundle: %d %s %s", code, out, errs)
	}
	if code, out, errs := f.run("handover", "receipt", "-by", "NewMSP (Jo)", "-bundle", bundle, f.dir); code != ExitOK || !strings.Contains(out, "It is the bundle made at") || !strings.Contains(errs, "a newer bundle was made since") {
		t.Fatalf("a replayed older bundle: %d %s %s", code, out, errs)
	}
	if _, md, _ := f.run("handover", f.dir); !strings.Contains(md, "**Received:** by NewMSP (Jo)") {
		t.Fatalf("the checklist does not show the receipt:\n%s", md)
	}
	if code, _, errs := f.run("secrets", "show", "root@host01", f.dir); code != ExitOK || !strings.Contains(errs, "now belongs to it") {
		t.Fatalf("secrets show after the receipt: %d %s", code, errs)
	}
	if code, _, errs := f.run("handover", "receipt", "-by", "x", "-bundle", damaged, f.dir); code == ExitOK || !strings.Contains(errs, "not a bundle this workspace made") {
		t.Fatalf("a receipt for another file: %d %s", code, errs)
	}
}

// checkHTMLInChromium renders the page in a real headless Chromium: it
// renders (the DOM has the open items and the systems), it requests
// nothing but the file itself (Chromium's network log), and it prints to
// PDF.
func checkHTMLInChromium(t *testing.T, html string, want []string) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (apt-get install chromium): the HTML checklist is tested in it")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "checklist.html")
	os.WriteFile(page, []byte(html), 0o644)
	netlog := filepath.Join(dir, "net.json")
	pdf := filepath.Join(dir, "checklist.pdf")
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--user-data-dir=" + filepath.Join(dir, "profile"), "--log-net-log=" + netlog}
	dom, err := exec.Command(bin, append(flags, "--dump-dom", "file://"+page)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(string(dom), w) {
			t.Errorf("the rendered page lacks %q", w)
		}
	}
	if reqs := pageRequests(t, netlog); len(reqs) > 0 {
		t.Errorf("the page made network requests: %v", reqs)
	}
	if out, err := exec.Command(bin, append(flags[:len(flags)-1], "--print-to-pdf="+pdf, "--no-pdf-header-footer", "file://"+page)...).CombinedOutput(); err != nil {
		t.Fatalf("chromium --print-to-pdf: %v %s", err, out)
	}
	if b, err := os.ReadFile(pdf); err != nil || !strings.HasPrefix(string(b), "%PDF") || len(b) < 2000 {
		t.Fatalf("no PDF: %v (%d bytes)", err, len(b))
	}
	// The check can fail: a page with an external image is caught.
	bad := filepath.Join(dir, "bad.html")
	os.WriteFile(bad, []byte(`<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png">x</body></html>`), 0o644)
	badLog := filepath.Join(dir, "bad-net.json")
	flags[len(flags)-1] = "--log-net-log=" + badLog
	exec.Command(bin, append(flags, "--dump-dom", "file://"+bad)...).Run()
	if reqs := pageRequests(t, badLog); len(reqs) == 0 {
		t.Fatal("the network check did not see a page's request for an external image")
	}
}

// pageRequests are the http(s)/ws requests a page started, from Chromium's
// network log; Chromium's own background requests (updates, accounts)
// start with the initiator "not an origin" and are left out.
func pageRequests(t *testing.T, netlog string) []string {
	t.Helper()
	lf, err := os.Open(netlog)
	if err != nil {
		t.Fatalf("no network log: %v", err)
	}
	defer lf.Close()
	var out []string
	sc := bufio.NewScanner(lf)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		l := sc.Text()
		if !strings.Contains(l, `"initiator":`) || strings.Contains(l, `"initiator":"not an origin"`) {
			continue
		}
		for _, scheme := range []string{`"url":"http`, `"url":"ws`, `"url":"ftp`} {
			if i := strings.Index(l, scheme); i >= 0 {
				out = append(out, l[i:min(len(l), i+120)])
			}
		}
	}
	return out
}

// stripTarEntry is a tar file without the named entry.
func stripTarEntry(t *testing.T, data []byte, name string) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if h.Name == name {
			continue
		}
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.Close()
	return out.Bytes()
}
