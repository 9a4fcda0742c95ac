package operation

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/hashicorp/hcl/v2"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/fsutil"
	"github.com/switchover/switchover/internal/handover"
	"github.com/switchover/switchover/internal/runbook"
	"github.com/switchover/switchover/internal/secrets"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/workspace"
)

// ErrNoState: the runbook was never applied.
var ErrNoState = fmt.Errorf("has no state yet: nothing was applied there")

// Checklist builds DIR's checklist from its runbook, state and trail
// (read without the lock).
func Checklist(dir string) (*handover.Checklist, *runbook.Runbook, hcl.Diagnostics, error) {
	rb, diags := runbook.Load(dir)
	if diags.HasErrors() {
		return nil, rb, diags, nil
	}
	if !WorkspaceExists(dir) {
		return nil, rb, nil, ErrNoState
	}
	snap, data, err := ReadTrail(dir)
	if err != nil {
		return nil, rb, nil, err
	}
	entries, problems := audit.Verify(data, snap.AuditSeq, snap.AuditHash)
	return handover.Build(handover.Input{Runbook: rb, State: snap, Audit: entries, Problems: problems, AuditHead: audit.LineHash(data), Now: time.Now()}), rb, nil, nil
}

// Bundle is a handover bundle written.
type Bundle struct {
	Parts, Secrets int
	Signer, SHA256 string
}

// MakeBundle writes the handover bundle of the runbook in dir (ws, open)
// to out, encrypted to recipients and signed with the workspace's key;
// the audit trail records that it was made, and its hash. The lock is
// taken first: taking it records what a run cut off left in the trail,
// and the bundle's trail and head are read after that.
func MakeBundle(ws *workspace.Workspace, dir, out string, recipients []age.Recipient) (*Bundle, hcl.Diagnostics, error) {
	if err := ws.Lock("handover bundle"); err != nil {
		return nil, nil, err
	}
	c, _, diags, err := Checklist(dir)
	if c == nil {
		return nil, diags, err
	}
	// A bundle write that was killed left its temporary file.
	fsutil.RemoveStaleTemps(out)
	parts, err := bundleParts(ws, c, dir)
	if err != nil {
		return nil, nil, err
	}
	m := handover.Manifest{Created: time.Now().UTC(), Runbook: c.Runbook.Name, RunbookHash: c.Runbook.Hash, AuditHead: c.Audit.HeadHash}
	id, err := ws.ExistingIdentity("")
	if err != nil {
		return nil, nil, fmt.Errorf("the workspace identity (it signs the bundle): %v", err)
	}
	key := workspace.SigningKey(id)
	res := &Bundle{Parts: len(parts), Secrets: len(c.Secrets), Signer: handover.Fingerprint(key.Public().(ed25519.PublicKey))}
	b, err := handover.MakeBundle(m, parts, recipients, key)
	if err != nil {
		return nil, nil, err
	}
	if err := fsutil.WriteFileAtomic(out, b, 0o600); err != nil {
		return nil, nil, err
	}
	h := sha256.Sum256(b)
	res.SHA256 = hex.EncodeToString(h[:])
	if err := ws.Audit.Append(audit.EvHandoverMade, "", map[string]any{"bundle_sha256": res.SHA256, "recipients": len(recipients), "secrets": res.Secrets, "signer": res.Signer}); err != nil {
		return nil, nil, fmt.Errorf("the bundle is written, but the audit trail could not record it: %v", err)
	}
	return res, nil, nil
}

// bundleParts are the bundle's files: the checklist, the secrets in clear
// (the bundle is encrypted), the trail and the export manifests.
func bundleParts(ws *workspace.Workspace, c *handover.Checklist, dir string) ([]handover.Part, error) {
	var js, html bytes.Buffer
	if err := c.JSON(&js); err != nil {
		return nil, err
	}
	if err := c.HTML(&html); err != nil {
		return nil, err
	}
	id, err := ws.ExistingIdentity("")
	if err != nil {
		return nil, fmt.Errorf("the secrets cannot be decrypted for the bundle: %v", err)
	}
	vals := map[string]string{}
	var decErr error
	ws.State.View(func(s *state.Snapshot) {
		for name, sec := range s.Secrets {
			if sec.Current == nil {
				continue
			}
			pt, err := secrets.Decrypt(sec.Current.Ciphertext, id)
			if err != nil {
				decErr = fmt.Errorf("secret %q: %v", name, err)
				return
			}
			vals[name] = string(pt)
		}
	})
	if decErr != nil {
		return nil, decErr
	}
	sb, _ := json.MarshalIndent(vals, "", "  ")
	_, trail, err := ReadTrail(dir)
	if err != nil {
		return nil, err
	}
	parts := []handover.Part{{Name: "checklist.json", Data: js.Bytes()}, {Name: "checklist.html", Data: html.Bytes()},
		{Name: "secrets.json", Data: sb}, {Name: "audit.jsonl", Data: trail}}
	// Export manifests (ssh.export's SHA256SUMS), by the step that made them.
	var manifests []string
	for _, sys := range c.Systems {
		for _, st := range sys.Steps {
			if p, ok := st.Evidence["manifest"].(string); ok && p != "" {
				manifests = append(manifests, st.Address+"\x00"+p)
			}
		}
	}
	sort.Strings(manifests)
	for _, m := range manifests {
		addr, p, _ := strings.Cut(m, "\x00")
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("the export manifest of %s: %v", addr, err)
		}
		parts = append(parts, handover.Part{Name: "exports/" + safePartName(addr) + "/SHA256SUMS", Data: b})
	}
	return parts, nil
}

func safePartName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// Receipt is a bundle's receipt: the bundle made, and a newer one when
// there is one (the new provider should have that).
type Receipt struct {
	SHA256       string
	Made, Newest *audit.Entry
}

// FindBundle finds the bundle at path among those dir's trail records as
// made: only a bundle this workspace recorded making, not any line that
// happens to hold the hash.
func FindBundle(dir, path string) (*Receipt, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	_ = f.Close() // read only
	if err != nil {
		return nil, err
	}
	r := &Receipt{SHA256: hex.EncodeToString(h.Sum(nil))}
	_, trail, err := ReadTrail(dir)
	if err != nil {
		return nil, err
	}
	entries, _ := audit.Verify(trail, 0, "")
	for i, e := range entries {
		if e.Event != string(audit.EvHandoverMade) {
			continue
		}
		r.Newest = &entries[i]
		if e.Fields["bundle_sha256"] == r.SHA256 {
			r.Made = &entries[i]
		}
	}
	if r.Made == nil {
		return nil, fmt.Errorf("%s is not a bundle this workspace made (no bundle with sha256 %s is recorded as made)", path, r.SHA256)
	}
	return r, nil
}

// RecordReceipt records, under the lock, that by received the bundle.
func RecordReceipt(ws *workspace.Workspace, r *Receipt, by string) error {
	if err := ws.Lock("handover receipt"); err != nil {
		return err
	}
	if err := ws.Audit.Append(audit.EvHandoverReceipt, "", map[string]any{"by": by, "bundle_sha256": r.SHA256}); err != nil {
		return fmt.Errorf("writing the audit trail: %w", err)
	}
	return nil
}

// ReceivedBy says who received a bundle of this workspace ("" if nobody).
func ReceivedBy(dir string) string {
	_, trail, err := ReadTrail(dir)
	if err != nil || !bytes.Contains(trail, []byte(audit.EvHandoverReceipt)) {
		return ""
	}
	entries, _ := audit.Verify(trail, 0, "")
	by := ""
	for _, e := range entries {
		if e.Event == string(audit.EvHandoverReceipt) {
			by = fmt.Sprintf("%v at %s", e.Fields["by"], e.Time.Local().Format("2006-01-02 15:04"))
		}
	}
	return by
}

// ReadTrail reads DIR's state and audit trail without taking the lock or
// writing anything.
func ReadTrail(dir string) (*state.Snapshot, []byte, error) {
	open, _, err := StateOpener(dir)
	if err != nil {
		return nil, nil, err
	}
	b, err := open(workspace.Path(dir))
	if err != nil {
		return nil, nil, err
	}
	recs, err := b.Records()
	var data []byte
	if err == nil {
		var j audit.Journal
		if j, err = b.Journal(); err == nil {
			data, err = j.ReadAll()
		}
	}
	_ = b.Close() // read only
	if err != nil {
		return nil, nil, err
	}
	snap := state.NewSnapshot()
	for _, r := range recs {
		snap.Apply(r)
	}
	return snap, data, nil
}
