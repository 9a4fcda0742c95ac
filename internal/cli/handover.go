package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/switchover/switchover/internal/operation"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/fsutil"
	"github.com/switchover/switchover/internal/handover"
	"github.com/switchover/switchover/internal/secrets"
)

const handoverUsage = `Usage: switchover handover [DIR] [-format md|html|json] [-out FILE]
       switchover handover bundle [DIR] -recipient KEY [-recipient KEY...] -out FILE
       switchover handover open FILE -identity KEY [-out DIR]
       switchover handover receipt [DIR] -by NAME -bundle FILE
`

func runHandover(ctx context.Context, env *Env, args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "bundle":
			return handoverBundle(env, args[1:])
		case "open":
			return handoverOpen(env, args[1:])
		case "receipt":
			return handoverReceipt(env, args[1:])
		}
	}
	var format, out string
	fs := newFlags(env, "handover", "Writes the new provider's onboarding checklist of DIR: open items first, then per system what\nwas done with its evidence, and the secrets delivered (names only). Subcommands: bundle, open, receipt.\n\n"+handoverUsage, "[DIR]")
	fs.StringVar(&format, "format", "md", "md (for a ticket), html (for a person: one self-contained page) or json (documented fields)")
	fs.StringVar(&out, "out", "", "Write to FILE instead of standard output")
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	c, code := checklistOf(env, "handover", dirArg(pos))
	if c == nil {
		return code
	}
	var buf bytes.Buffer
	var err error
	switch format {
	case "md", "markdown":
		err = c.Markdown(&buf)
	case "html":
		err = c.HTML(&buf)
	case "json":
		err = c.JSON(&buf)
	default:
		fmt.Fprintf(env.Stderr, "switchover handover: -format is %q: md, html or json\n", format)
		return ExitError
	}
	if err == nil {
		err = writeOut(env, out, buf.Bytes(), 0o644)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "switchover handover: %v\n", err)
		return ExitError
	}
	return ExitOK
}

func writeOut(env *Env, path string, b []byte, mode os.FileMode) error {
	if path == "" {
		// To a terminal maybe: remote text's control characters escaped
		// (the checklist's JSON escapes them itself).
		_, err := io.WriteString(env.Stdout, termSafe(string(b)))
		return err
	}
	return fsutil.WriteFileAtomic(path, b, mode)
}

// checklistOf builds DIR's checklist from its runbook, state and trail.
func checklistOf(env *Env, verb, dir string) (*handover.Checklist, int) {
	c, rb, diags, err := operation.Checklist(dir)
	switch {
	case diags.HasErrors():
		printDiags(env.Stderr, rb.Files, diags)
		return nil, ExitError
	case errors.Is(err, operation.ErrNoState):
		fmt.Fprintf(env.Stderr, "switchover %s: %s has no state yet: nothing was applied there\n", verb, dir)
		return nil, ExitError
	case err != nil:
		fmt.Fprintf(env.Stderr, "switchover %s: %v\n", verb, err)
		return nil, ExitError
	}
	return c, ExitOK
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// recipientOf reads a recipient: a key, or a file holding keys (an
// authorized_keys or age recipients file).
func recipientsOf(arg string) ([]age.Recipient, error) {
	lines := []string{arg}
	if b, err := os.ReadFile(arg); err == nil {
		lines = strings.Split(string(b), "\n")
	}
	var out []age.Recipient
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		r, err := secrets.ParseRecipient(l)
		if err != nil {
			return nil, fmt.Errorf("%q is not an age (age1...) or SSH (ssh-ed25519, ssh-rsa) public key, nor a file of them", firstLine(arg))
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no public key", arg)
	}
	return out, nil
}

func handoverBundle(env *Env, args []string) int {
	var recips multiFlag
	var out string
	fs := newFlags(env, "handover bundle", "Writes one file encrypted with age to the new provider's key(s): the checklist (JSON and\nHTML), every current secret, the audit trail, the export manifests, and a manifest with the\nSHA-256 of each part. The audit trail records that it was made, and its hash.", "[DIR]")
	fs.Var(&recips, "recipient", "The new provider's age (age1...) or SSH public key, or a file of them (repeatable)")
	fs.StringVar(&out, "out", "", "The bundle file to write (required)")
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "switchover handover bundle: "+format+"\n", a...)
		return ExitError
	}
	if out == "" || len(recips) == 0 {
		return fail("give -recipient KEY (the new provider's public key) and -out FILE")
	}
	var recipients []age.Recipient
	for _, r := range recips {
		rs, err := recipientsOf(r)
		if err != nil {
			return fail("%v", err)
		}
		recipients = append(recipients, rs...)
	}
	dir := dirArg(pos)
	ws, ok := openExisting(env, "handover bundle", dir)
	if !ok {
		return ExitError
	}
	defer func() { _ = ws.Close() }() // errors of an already-reported session
	// The bundle holds every secret: its making is recorded, under the lock.
	res, diags, err := operation.MakeBundle(ws, dir, out, recipients)
	if diags.HasErrors() {
		printDiags(env.Stderr, nil, diags)
		return ExitError
	}
	if errors.Is(err, operation.ErrNoState) {
		return fail("%s has no state yet: nothing was applied there", dir)
	}
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(env.Stdout, "Wrote %s (%d parts, %d secrets), encrypted to %d key(s).\n  signed by  %s\n  sha256     %s\nRead both out to the new provider (by phone, not in the mail that carries the file). It opens it with:\n  switchover handover open %s -identity KEY -signer %s\n",
		out, res.Parts, res.Secrets, len(recipients), res.Signer, res.SHA256, filepath.Base(out), res.Signer)
	return ExitOK
}

func handoverOpen(env *Env, args []string) int {
	var identity, out, signer string
	fs := newFlags(env, "handover open", "Decrypts a handover bundle with the new provider's identity, checks its signature against the\nsigner the previous provider read out, every part against the manifest and the audit trail's\nhash chain, and says exactly what does not match.", "FILE")
	fs.StringVar(&identity, "identity", "", "age identity file or SSH private key (required)")
	fs.StringVar(&signer, "signer", "", "The fingerprint the previous provider read out (SHA256:...; required: anyone with your public key can make a bundle)")
	fs.StringVar(&out, "out", "", "Write the parts into this directory (mode 0700; secrets.json holds the passwords)")
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "switchover handover open: "+format+"\n", a...)
		return ExitError
	}
	if len(pos) != 1 || identity == "" {
		return fail("give the bundle FILE and -identity KEY")
	}
	id, err := secrets.LoadAnyIdentity(identity)
	if err != nil {
		return fail("cannot read the identity: %v", err)
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return fail("%v", err)
	}
	m, parts, problems, err := handover.OpenBundle(data, id)
	if err != nil {
		return fail("%v", err)
	}
	h := sha256.Sum256(data)
	signedBy := m.Signer
	if signedBy == "" {
		signedBy = "(unsigned, or the signature does not verify)"
	}
	fmt.Fprintf(env.Stdout, "Bundle sha256 %s\nSigned by     %s\n", hex.EncodeToString(h[:]), signedBy)
	switch {
	case m.Signer == "":
		return fail("the bundle is not signed by a workspace, or its signature does not verify: do not trust it; ask the previous provider for a new one")
	case signer == "":
		return fail("give -signer with the fingerprint the previous provider read out to you: the bundle says it was signed by %s, which proves nothing until you compare", m.Signer)
	case strings.TrimPrefix(strings.TrimSpace(signer), "SHA256:") != strings.TrimPrefix(m.Signer, "SHA256:"):
		return fail("the bundle is signed by %s, not by %s: it was not made by the workspace you expect; do not trust it", m.Signer, signer)
	}
	if trail, ok := parts["audit.jsonl"]; ok {
		// The chain must hold up to the head the manifest names.
		entries, _ := audit.Verify(trail, 0, "")
		var last int64
		if len(entries) > 0 {
			last = entries[len(entries)-1].Seq
		}
		_, aprobs := audit.Verify(trail, last, m.AuditHead)
		for _, p := range aprobs {
			problems = append(problems, "audit.jsonl: "+p.String())
		}
	}
	w := env.Stdout
	fmt.Fprintf(w, "Bundle of runbook %q (hash %s), made %s; audit head %s.\n", m.Runbook, m.RunbookHash, m.Created.Format(time.RFC3339), m.AuditHead)
	names := make([]string, 0, len(parts))
	for n := range parts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  ok  %s (%d bytes)\n", n, len(parts[n]))
	}
	if out != "" {
		if err := writeParts(out, parts); err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(w, "Wrote the parts that match into %s.\n", out)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(env.Stderr, "  BAD %s\n", p)
		}
		return fail("%d part(s) do not match: do not trust this bundle; ask the previous provider for a new one", len(problems))
	}
	fmt.Fprintln(w, "The signature is the expected signer's, every part matches the manifest, and the audit trail's chain holds.")
	return ExitOK
}

func writeParts(dir string, parts map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, b := range parts {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if rel, err := filepath.Rel(dir, p); err != nil || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("part name %q leaves the directory", name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(p, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func handoverReceipt(env *Env, args []string) int {
	var by, bundle string
	fs := newFlags(env, "handover receipt", "Records in the audit trail that the new provider received the handover bundle (its hash);\nthe checklist shows it.", "[DIR]")
	fs.StringVar(&by, "by", "", "Who received it (required)")
	fs.StringVar(&bundle, "bundle", "", "The bundle file received (required)")
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	if strings.TrimSpace(by) == "" || bundle == "" {
		fmt.Fprintln(env.Stderr, "switchover handover receipt: give -by NAME and -bundle FILE")
		return ExitError
	}
	dir := dirArg(pos)
	r, err := operation.FindBundle(dir, bundle)
	if err != nil {
		fmt.Fprintf(env.Stderr, "switchover handover receipt: %v\n", err)
		return ExitError
	}
	made, newest, sum := r.Made, r.Newest, r.SHA256
	fmt.Fprintf(env.Stdout, "It is the bundle made at %s (audit seq %d).\n", made.Time.Local().Format("2006-01-02 15:04:05"), made.Seq)
	if newest != made {
		fmt.Fprintf(env.Stderr, "Note: a newer bundle was made since, at %s (audit seq %d): the new provider should have that one.\n", newest.Time.Local().Format("2006-01-02 15:04:05"), newest.Seq)
	}
	ws, ok := openExisting(env, "handover receipt", dir)
	if !ok {
		return ExitError
	}
	defer func() { _ = ws.Close() }() // errors of an already-reported session
	if err := operation.RecordReceipt(ws, r, by); err != nil {
		fmt.Fprintf(env.Stderr, "switchover handover receipt: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(env.Stdout, "Recorded: %s received the bundle %s. The secrets now belong to the new provider.\n", by, sum)
	return ExitOK
}
