package cli

import (
	"context"
	"fmt"
	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/operation"
	"sort"

	"github.com/switchover/switchover/internal/secrets"
	"github.com/switchover/switchover/internal/state"
)

func runSecrets(ctx context.Context, env *Env, args []string) int {
	usage := "Usage: switchover secrets list [DIR] [-json]\n       switchover secrets show NAME [DIR] [-identity FILE]\n"
	if len(args) == 0 || (args[0] != "list" && args[0] != "show") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprint(env.Stdout, usage+"\nlist: every secret's name, the step that set it, when, and whether it is verified; never a value.\nshow: decrypts one secret with the workspace identity (or -identity) and prints it.\n")
			return ExitOK
		}
		fmt.Fprint(env.Stderr, usage)
		return ExitError
	}
	if args[0] == "list" {
		return secretsList(env, args[1:])
	}
	return secretsShow(env, args[1:])
}

func secretsList(env *Env, args []string) int {
	var asJSON bool
	fs := newFlags(env, "secrets list", "Lists the secrets: name, the step that set it, when, verified or not. Never a value.", "[DIR]")
	fs.BoolVar(&asJSON, "json", false, "Print as JSON")
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	ws, ok := openExisting(env, "secrets list", dirArg(pos))
	if !ok {
		return ExitError
	}
	defer func() { _ = ws.Close() }() // errors of a read-only or already-reported session
	type row struct {
		Name       string `json:"name"`
		SetBy      string `json:"set_by"`
		Created    string `json:"created"`
		Verified   bool   `json:"verified"`
		VerifiedAt string `json:"verified_at,omitempty"`
		Rotating   bool   `json:"rotation_pending"`
	}
	var rows []row
	ws.State.View(func(s *state.Snapshot) {
		for _, sec := range s.Secrets {
			v := sec.Current
			r := row{Name: sec.Name}
			if sec.Pending != nil {
				r.Rotating = v != nil
				if v == nil {
					v = sec.Pending
				}
			}
			r.SetBy, r.Created, r.Verified = v.SetBy, stamp(v.Created), v.Verified
			if v.Verified {
				r.VerifiedAt = stamp(v.VerifiedAt)
			}
			rows = append(rows, r)
		}
	})
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	if asJSON {
		writeJSON(env.Stdout, map[string]any{"format_version": 1, "secrets": rows})
		return ExitOK
	}
	fmt.Fprintf(env.Stdout, "%-30s %-40s %-19s %s\n", "NAME", "SET BY", "CREATED", "VERIFIED")
	for _, r := range rows {
		ver := "no: set, not yet verified"
		if r.Verified {
			ver = "yes, " + r.VerifiedAt
		}
		if r.Rotating {
			ver += " (a new value is being set)"
		}
		fmt.Fprintf(env.Stdout, "%-30s %-40s %-19s %s\n", r.Name, r.SetBy, r.Created, ver)
	}
	return ExitOK
}

func secretsShow(env *Env, args []string) int {
	var identity string
	var pending bool
	fs := newFlags(env, "secrets show", "Decrypts a secret and prints its value. Needs the workspace identity (or -identity FILE,\nsuch as the new MSP's age key). The audit trail records who read it.", "NAME [DIR]")
	fs.StringVar(&identity, "identity", "", "age identity file to decrypt with (default: the workspace identity)")
	fs.BoolVar(&pending, "pending", false, "Show the value being set (not yet verified) instead of the current one")
	pos, code, ok := parse(fs, args, 2)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		fmt.Fprintln(env.Stderr, "switchover secrets show: name the secret (see `switchover secrets list`)")
		return ExitError
	}
	name, dir := pos[0], "."
	if len(pos) == 2 {
		dir = pos[1]
	}
	ws, ok := openExisting(env, "secrets show", dir)
	if !ok {
		return ExitError
	}
	defer func() { _ = ws.Close() }() // errors of a read-only or already-reported session
	// Reading a secret is recorded in the audit trail, which needs the lock.
	if err := ws.Lock("secrets show"); err != nil {
		fmt.Fprintf(env.Stderr, "switchover secrets show: %v\n", err)
		return ExitError
	}
	var v *state.SecretVersion
	var exists bool
	ws.State.View(func(s *state.Snapshot) {
		if sec := s.Secrets[name]; sec != nil {
			exists = true
			v = sec.Current
			if pending || v == nil {
				if sec.Pending != nil {
					v = sec.Pending
				}
			}
		}
	})
	if !exists {
		fmt.Fprintf(env.Stderr, "switchover secrets show: there is no secret %q (see `switchover secrets list`)\n", name)
		return ExitError
	}
	id, err := ws.ExistingIdentity(identity)
	if err != nil {
		fmt.Fprintf(env.Stderr, "switchover secrets show: cannot decrypt without an identity: %v\n", err)
		return ExitError
	}
	pt, err := secrets.Decrypt(v.Ciphertext, id)
	if err != nil {
		fmt.Fprintf(env.Stderr, "switchover secrets show: this identity cannot decrypt secret %q: %v\n", name, err)
		return ExitError
	}
	// Shown only once the reading is in the trail.
	if err := ws.Audit.Append(audit.EvSecretShown, "", map[string]any{"name": name, "verified": v.Verified}); err != nil {
		fmt.Fprintf(env.Stderr, "switchover secrets show: cannot record the reading in the audit trail (%v); the secret is not shown\n", err)
		return ExitError
	}
	if by := operation.ReceivedBy(dir); by != "" {
		fmt.Fprintf(env.Stderr, "Warning: the new provider received the handover bundle (%s): this secret now belongs to it; the reading is in the audit trail.\n", by)
	}
	fmt.Fprintln(env.Stdout, string(pt))
	return ExitOK
}
