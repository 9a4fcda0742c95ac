package handover

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/runbook"
	"github.com/switchover/switchover/internal/state"
)

const canary = "CANARY-s3cr3t-9f8e7d"

var _, testSigner, _ = ed25519.GenerateKey(nil)

func loadRunbook(t testing.TB, src string) *runbook.Runbook {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.sw.hcl"), []byte(src), 0o644)
	rb, d := runbook.Load(dir)
	if d.HasErrors() {
		t.Fatal(d.Error())
	}
	return rb
}

// A run with a step of every status, a secret, a handover block.
func sample(t testing.TB) Input {
	rb := loadRunbook(t, `
runbook "switch" {
  client       = "Bakery Example GmbH"
  old_provider = "OldMSP"
  new_provider = "NewMSP"
}
step "core.noop" "done" { message = "x" }
step "core.noop" "broken" { message = "x" }
step "core.manual" "registrar" {
  instructions = "Move the domain to the new registrar account."
  confirm_by   = "office manager"
}
step "core.noop" "later" { message = "x" }
step "core.noop" "off" {
  message = "x"
  when    = false
}
handover {
  item "Change the break-glass account's password" {
    owner  = "NewMSP"
    due    = "2026-12-09"
    detail = "It is in the safe; the old provider knew it."
  }
}
`)
	st := state.NewSnapshot()
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, r := range []*state.Record{
		{Kind: state.KindRun, RunID: "r1", RunbookHash: rb.Hash, Time: now},
		{Kind: state.KindStatus, Address: "step.done", Status: state.Done, Summary: "did it", Outputs: json.RawMessage(`{"removed":["oldmsp@lab <script>"]}`), Target: "ssh 10.0.0.5:22", Time: now},
		{Kind: state.KindStatus, Address: "step.broken", Status: state.Failed, Error: "host01: login refused", Time: now},
		{Kind: state.KindStatus, Address: "step.registrar", Status: state.Waiting, Summary: "Move the domain | to the new registrar account.", Time: now},
		{Kind: state.KindStatus, Address: "step.later", Status: state.Waiting, Summary: "second reset due", Until: now.Add(10 * time.Hour), Time: now},
		{Kind: state.KindStatus, Address: "step.off", Status: state.Skipped, Summary: "skipped: its `when` condition is false", Time: now},
		{Kind: state.KindSecret, Name: "root@host01", Address: "step.done", Ciphertext: []byte(canary), Time: now},
		{Kind: state.KindSecret, Name: "root@host01", Address: "step.done", Verified: true, Time: now},
	} {
		st.Apply(r)
	}
	entries := []audit.Entry{
		{Seq: 1, Time: now, Event: string(audit.EvApplyApproved), Actor: "anna@laptop", Fields: map[string]any{"how": "typed yes", "run": "r1"}},
		{Seq: 2, Time: now, Event: string(audit.EvConfirmed), Address: "step.x", Fields: map[string]any{"by": "Anna", "note": "done"}},
	}
	return Input{Runbook: rb, State: st, Audit: entries, AuditHead: "abc123", Now: now}
}

func TestChecklistFromARun(t *testing.T) {
	c := Build(sample(t))
	var kinds []string
	for _, it := range c.OpenItems {
		kinds = append(kinds, it.Kind)
	}
	if got := strings.Join(kinds, " "); got != "failed waiting_for_person due_later skipped task" {
		t.Fatalf("open items, first things first: %s", got)
	}
	if c.OpenItems[1].Owner != "office manager" || c.OpenItems[4].DueText != "2026-12-09" || c.OpenItems[4].Owner != "NewMSP" {
		t.Fatalf("owners and due dates: %+v", c.OpenItems)
	}
	if c.Counts != (Counts{Done: 1, Failed: 1, Waiting: 1, Due: 1, Skipped: 1}) {
		t.Fatalf("counts: %+v", c.Counts)
	}
	var systems []string
	for _, s := range c.Systems {
		systems = append(systems, s.Name)
	}
	if got := strings.Join(systems, ", "); got != "core, ssh 10.0.0.5:22" {
		t.Fatalf("systems: %s (a step's target names its system)", got)
	}
	if len(c.Secrets) != 1 || !c.Secrets[0].Verified || c.Secrets[0].SetBy != "step.done" {
		t.Fatalf("secrets: %+v", c.Secrets)
	}
	if len(c.Runs) != 1 || c.Runs[0].By != "anna@laptop" || c.Audit.HeadHash != "abc123" {
		t.Fatalf("header: %+v %+v", c.Runs, c.Audit)
	}
	for format, render := range map[string]func(io.Writer) error{"md": c.Markdown, "html": c.HTML, "json": c.JSON} {
		var b bytes.Buffer
		if err := render(&b); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if strings.Contains(out, canary) {
			t.Fatalf("%s shows a secret's value", format)
		}
		for _, want := range []string{"Bakery Example GmbH", "host01: login refused", "break-glass", "root@host01"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s lacks %q", format, want)
			}
		}
		if format == "html" && (strings.Contains(out, "<script>") || strings.Contains(out, "http://") || strings.Contains(out, "https://")) {
			t.Errorf("the HTML has a script or an external reference")
		}
		if format == "md" && !strings.Contains(out, `Move the domain \| to the new registrar`) {
			t.Errorf("a | in a summary breaks the Markdown table")
		}
		if format == "json" {
			var back map[string]any
			if err := json.Unmarshal(b.Bytes(), &back); err != nil || back["format_version"] != float64(1) {
				t.Errorf("json: %v %v", err, back["format_version"])
			}
		}
	}
}

func recipient(t *testing.T) (*age.X25519Identity, age.Recipient) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id, id.Recipient()
}

// rewrite changes the bundle's tar: f gets every part's encrypted bytes.
func rewrite(t *testing.T, bundle []byte, f func(name string, b []byte) []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(bundle))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		b, _ := io.ReadAll(tr)
		b = f(strings.TrimSuffix(h.Name, ".age"), b)
		h.Size = int64(len(b))
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.Close()
	return out.Bytes()
}

func TestBundleOpensOnlyWhenWhole(t *testing.T) {
	id, r := recipient(t)
	parts := []Part{{Name: "checklist.json", Data: []byte(`{"a":1}`)}, {Name: "secrets.json", Data: []byte(`{"root":"` + canary + `"}`)}, {Name: "audit.jsonl", Data: []byte("line\n")}}
	b, err := MakeBundle(Manifest{Runbook: "r", Created: time.Now()}, parts, []age.Recipient{r}, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(canary)) {
		t.Fatal("a secret in clear in the bundle")
	}
	m, got, problems, err := OpenBundle(b, id)
	if err != nil || len(problems) != 0 || string(got["secrets.json"]) != string(parts[1].Data) || len(m.Parts) != 3 {
		t.Fatalf("open: %v %v %v", err, problems, got)
	}
	// Another identity.
	other, _ := recipient(t)
	if _, _, _, err := OpenBundle(b, other); err != ErrNotForIdentity {
		t.Fatalf("a wrong identity: %v", err)
	}
	// One changed byte in one part: that part is named.
	changed := rewrite(t, b, func(name string, ct []byte) []byte {
		if name == "secrets.json" {
			ct = append([]byte(nil), ct...)
			ct[len(ct)-5] ^= 1
		}
		return ct
	})
	_, _, problems, err = OpenBundle(changed, id)
	if err != nil || len(problems) != 1 || !strings.HasPrefix(problems[0], "secrets.json: cannot be decrypted") {
		t.Fatalf("a changed byte: %v %v", err, problems)
	}
	// A part swapped for another that decrypts (made for the same key).
	other2, _ := MakeBundle(Manifest{Runbook: "r"}, []Part{{Name: "audit.jsonl", Data: []byte("forged\n")}}, []age.Recipient{r}, testSigner)
	var forged []byte
	rewrite(t, other2, func(name string, ct []byte) []byte {
		if name == "audit.jsonl" {
			forged = ct
		}
		return ct
	})
	swapped := rewrite(t, b, func(name string, ct []byte) []byte {
		if name == "audit.jsonl" {
			return forged
		}
		return ct
	})
	_, _, problems, err = OpenBundle(swapped, id)
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0], "audit.jsonl: does not match the manifest") {
		t.Fatalf("a swapped part: %v %v", err, problems)
	}
}

// The checklist of a 10,000-instance run: see BenchmarkChecklist10000.
func BenchmarkChecklist10000(b *testing.B) {
	var src strings.Builder
	src.WriteString("runbook \"big\" {}\nstep \"core.noop\" \"many\" {\n  for_each = toset([])\n  message = \"x\"\n}\n")
	rb := loadRunbook(b, src.String())
	st := state.NewSnapshot()
	for i := 0; i < 10000; i++ {
		st.Apply(&state.Record{Kind: state.KindStatus, Address: fmt.Sprintf(`step.many["k%05d"]`, i), Status: state.Done, Summary: "instance done", Outputs: json.RawMessage(`{"message":"x"}`)})
	}
	in := Input{Runbook: rb, State: st, Now: time.Now()}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := Build(in)
		for _, render := range []func(io.Writer) error{c.Markdown, c.HTML, c.JSON} {
			if err := render(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// A confirmed step's result comes from the confirmation's record (who,
// when, the note), once, whatever its summary says.
func TestStepResultNamesTheConfirmerOnce(t *testing.T) {
	in := sample(t)
	at := in.Now.Add(time.Hour)
	in.State.Apply(&state.Record{Kind: state.KindConfirm, Address: "step.registrar", By: "Anna", Note: "registrar moved", Time: at})
	in.State.Apply(&state.Record{Kind: state.KindStatus, Address: "step.registrar", Status: state.Done, Summary: "confirmed by Anna: registrar moved", Time: at})
	c := Build(in)
	r := c.index["step.registrar"]
	if got, want := r.Result(), "confirmed by Anna at "+stamp(at)+": registrar moved"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got := (StepResult{Summary: "x", Error: "refused"}).Result(); got != "error: refused" {
		t.Errorf("%q", got)
	}
}

// What a person reads: evidence as lists and tables (never cty's type
// encoding), "->" as written in every format, a plugin's warnings and what
// it left for a person as open items with step and target, a gone object
// counted, a timed wait named "due later" (not "waiting for a person").
func TestChecklistReadsAsAPersonWould(t *testing.T) {
	in := sample(t)
	now := in.Now
	for _, r := range []*state.Record{
		{Kind: state.KindStatus, Address: "step.done", Status: state.Done, Summary: "moved a -> b", Target: "ldaps://dc1.kunde.example",
			Outputs: json.RawMessage(`{"value":{"accounts":{"tech1":{"dn":"CN=tech1","enabled":false},"tech2":{"dn":"CN=tech2","enabled":true}},"count":2,"names":["tech1","tech2"]},"type":["object",{"accounts":["map",["object",{"dn":"string","enabled":"bool"}]],"count":"number","names":["list","string"]}]}`),
			Notes:   []state.Note{{Kind: state.NoteLeftForPerson, Summary: "tech2 is privileged through its primary group", Detail: "Set its primary group to Domain Users -> by hand."}, {Kind: state.NoteWarning, Summary: "host key trusted on first use"}},
			Time:    now},
		{Kind: state.KindStatus, Address: `step.off`, Status: state.Gone, Summary: "gone: step.found no longer finds it", Time: now},
	} {
		in.State.Apply(r)
	}
	c := Build(in)
	kinds := map[string]OpenItem{}
	for _, it := range c.OpenItems {
		kinds[it.Kind] = it
	}
	if it := kinds["left_for_person"]; it.Step != "step.done" || it.Target != "ldaps://dc1.kunde.example" || !strings.Contains(it.Title, "primary group") {
		t.Fatalf("left_for_person item: %+v", it)
	}
	if it := kinds["warning"]; it.Title != "host key trusted on first use" {
		t.Fatalf("warning item: %+v", it)
	}
	if _, ok := kinds["skipped"]; ok {
		t.Fatal("a gone object is listed as skipped")
	}
	if c.Counts.Gone != 1 || c.Counts.Due != 1 || c.Counts.Waiting != 1 {
		t.Fatalf("counts: %+v", c.Counts)
	}
	var md, js, html bytes.Buffer
	if err := c.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := c.JSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := c.HTML(&html); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"markdown": md.String(), "json": js.String(), "html": html.String()} {
		for _, bad := range []string{`"type"`, `["object"`, `-\u003e`, `-\>`, "Waiting for a person: step.later"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s has %q", name, bad)
			}
		}
	}
	for _, want := range []string{"moved a -> b", "| key | dn | enabled |", "| tech2 | CN=tech2 | yes |", "- count: 2", "- names: tech1, tech2",
		"Due later: step.later", "1 gone", "**tech2 is privileged through its primary group** — `step.done` — on ldaps://dc1.kunde.example"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	if !strings.Contains(html.String(), "<th>enabled</th>") || !strings.Contains(html.String(), "<td>CN=tech1</td>") {
		t.Errorf("html evidence is not a table")
	}
	var back struct {
		Systems []struct {
			Steps []struct {
				Address  string         `json:"address"`
				Evidence map[string]any `json:"evidence"`
			} `json:"steps"`
		} `json:"systems"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range back.Systems {
		for _, st := range s.Steps {
			if st.Address == "step.done" {
				found = st.Evidence["count"] == float64(2) && st.Evidence["value"] == nil
			}
		}
	}
	if !found {
		t.Errorf("json evidence is not plain: %s", js.String())
	}
}

// Remote text is text: no link, image, HTML or table cell survives from
// it into the Markdown, and DEL and C1 controls are escaped in the JSON.
func TestRemoteTextCannotShapeTheChecklist(t *testing.T) {
	in := sample(t)
	in.State.Apply(&state.Record{Kind: state.KindStatus, Address: "step.broken", Status: state.Failed, Time: in.Now,
		Error: "x | done | [click here](https://evil.example) ![img](https://evil.example/p.png) <b>hi</b> \\[esc](https://evil.example)\nsecond line \u009b31m"})
	c := Build(in)
	var md, js bytes.Buffer
	c.Markdown(&md)
	c.JSON(&js)
	for _, bad := range []string{"[click here](", "![img](", "<b>", "\n  second line", `\\[esc](`} {
		if strings.Contains(strings.NewReplacer(`\\`, "\x01", `\[`, "\x00", `\]`, "\x00", `\<`, "\x00").Replace(md.String()), bad) {
			t.Errorf("markdown keeps %q", bad)
		}
	}
	for _, line := range strings.Split(md.String(), "\n") {
		if strings.HasPrefix(line, "| `step.broken`") && strings.Count(strings.ReplaceAll(line, `\|`, ""), "|") != 5 {
			t.Errorf("a pipe in remote text adds cells: %s", line)
		}
	}
	if strings.ContainsRune(js.String(), 0x9b) || !strings.Contains(js.String(), `\u009b31m`) {
		t.Errorf("json keeps the C1 control")
	}
}
