package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

type repoKey struct {
	Current bool   `json:"current"`
	ID      string `json:"id"`
	User    string `json:"userName"`
	Host    string `json:"hostName"`
	Created string `json:"created"`
}

// keys lists the repository's keys as seen with password; opens is false
// (and no error) when the password opens nothing.
func (s *settings) keys(ctx context.Context, password string) (keys []repoKey, opens bool, err error) {
	r, err := s.run(ctx, password, "key", "list")
	if err != nil {
		return nil, false, err
	}
	if r.exit != 0 {
		if resticError(r) == "the password does not open the repository" {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("listing the keys of %s: %s", s.repo, resticError(r))
	}
	if err := json.Unmarshal(r.stdout, &keys); err != nil {
		return nil, false, fmt.Errorf("reading restic's key list: %v", err)
	}
	return keys, true, nil
}

func current(keys []repoKey) string {
	for _, k := range keys {
		if k.Current {
			return k.ID
		}
	}
	return ""
}

// toRemove are the keys the rotation removes: all but the new one, or the
// given IDs (prefixes, as restic shows them).
func toRemove(keys []repoKey, keep string, only []string) []repoKey {
	var out []repoKey
	for _, k := range keys {
		if k.ID == keep {
			continue
		}
		if len(only) > 0 {
			match := false
			for _, id := range only {
				if strings.HasPrefix(k.ID, id) || strings.HasPrefix(id, k.ID) {
					match = true
				}
			}
			if !match {
				continue
			}
		}
		out = append(out, k)
	}
	return out
}

func describeKeys(ks []repoKey) string {
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s (%s@%s, %s)", k.ID, k.User, k.Host, k.Created))
	}
	return strings.Join(parts, ", ")
}

func (p *plugin) rotateKey() *sdk.Action {
	type view struct {
		newOpens bool
		newID    string
		remove   []repoKey
	}
	look := func(ctx context.Context, a sdk.Values) (*view, error) {
		if err := p.configured(); err != nil {
			return nil, err
		}
		s := p.s
		newPw := a.String("new_password")
		v := &view{}
		if newPw == s.password {
			// Done, and the plugin's password set to the new one since (as
			// the runbook's README says): its key is the only one left.
			// Otherwise it is the old password given as the new one.
			keys, opens, err := s.keys(ctx, newPw)
			if err != nil {
				return nil, err
			}
			if !opens {
				return nil, fmt.Errorf("the configured password does not open %s", s.repo)
			}
			v.newOpens, v.newID = true, current(keys)
			if v.remove = toRemove(keys, v.newID, a.Strings("remove_keys")); len(v.remove) > 0 {
				return nil, fmt.Errorf("new_password is the repository's current password and other keys remain (%s): give a new one, normally secret(\"...\")", describeKeys(v.remove))
			}
			return v, nil
		}
		keys, opens, err := s.keys(ctx, newPw)
		if err != nil {
			return nil, err
		}
		if !opens {
			// Not added yet: the configured password must open it.
			keys, opens, err = s.keys(ctx, s.password)
			if err != nil {
				return nil, err
			}
			if !opens {
				return nil, fmt.Errorf("neither the configured password nor new_password opens %s", s.repo)
			}
			v.remove = toRemove(keys, "", a.Strings("remove_keys"))
			return v, nil
		}
		v.newOpens, v.newID = true, current(keys)
		v.remove = toRemove(keys, v.newID, a.Strings("remove_keys"))
		return v, nil
	}
	plan := func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
		a := req.Attributes
		if !a.IsKnown("new_password") {
			if err := p.configured(); err != nil {
				return sdk.PlanError(err)
			}
			keys, opens, err := p.s.keys(ctx, p.s.password)
			if err != nil {
				return sdk.PlanError(err)
			}
			if !opens {
				return sdk.PlanError(fmt.Errorf("the configured password does not open %s", p.s.repo))
			}
			r := sdk.Changef("add a key for a new password to %s, then remove %d keys", p.s.repo, len(toRemove(keys, "", a.Strings("remove_keys"))))
			r.Details = []string{"remove: " + describeKeys(toRemove(keys, "", a.Strings("remove_keys")))}
			return r
		}
		v, err := look(ctx, a)
		if err != nil {
			return sdk.PlanError(err)
		}
		if v.newOpens && len(v.remove) == 0 {
			r := sdk.NoChangef("%s opens with the new password (key %s) and with no key of the old provider", p.s.repo, v.newID)
			r.Outputs = map[string]cty.Value{"key_id": cty.StringVal(v.newID)}
			return r
		}
		var what []string
		if !v.newOpens {
			what = append(what, "add a key for the new password")
		}
		if len(v.remove) > 0 {
			what = append(what, fmt.Sprintf("remove %d keys: %s", len(v.remove), describeKeys(v.remove)))
		}
		return sdk.Changef("%s: %s", p.s.repo, strings.Join(what, ", then "))
	}
	apply := func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		a := req.Attributes
		v, err := look(ctx, a)
		if err != nil {
			return sdk.ApplyError(err)
		}
		s := p.s
		newPw := a.String("new_password")
		if !v.newOpens {
			if err := s.addKey(ctx, newPw); err != nil {
				return sdk.ApplyError(err)
			}
			// The new key must open the repository before any key goes.
			if v, err = look(ctx, a); err != nil {
				return sdk.ApplyError(err)
			}
			if !v.newOpens {
				return sdk.ApplyError(fmt.Errorf("the key just added does not open %s: no key removed", s.repo))
			}
		}
		b, _ := json.Marshal(map[string]string{"new_key": v.newID})
		if err := ev.Checkpoint(ctx, b); err != nil {
			return sdk.ApplyError(err)
		}
		for _, k := range v.remove {
			// Authenticated with the new key, which restic never removes:
			// the last working key stays.
			if _, err := s.ok(ctx, newPw, "removing key "+k.ID, "key", "remove", k.ID); err != nil {
				return sdk.ApplyError(err)
			}
		}
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("%s: new key %s, removed %d keys", s.repo, v.newID, len(v.remove)), Outputs: map[string]cty.Value{"key_id": cty.StringVal(v.newID)}}
	}
	return &sdk.Action{
		Name:        "restic_rotate_key",
		Description: "Adds a repository key for new_password (normally secret(\"...\")), checks that it opens the repository, then removes the keys the old provider knows: all others, or remove_keys. The new key is never removed, so a working key always stays; killed between adding and removing, the next run finds the new key and goes on. Afterwards set the plugin's password to the new secret.",
		Attributes: []sdk.Attribute{
			{Name: "new_password", Type: cty.String, Required: true, Sensitive: true, Description: "The new repository password."},
			{Name: "remove_keys", Type: cty.List(cty.String), Description: "IDs of the keys to remove (default: every key but the new one)."},
		},
		Outputs:   []sdk.Output{{Name: "key_id", Type: cty.String, Description: "The new key's ID."}},
		PlanFunc:  plan,
		ApplyFunc: apply,
	}
}

// addKey adds a key for password; restic reads it from a file only this
// process can read, removed at once.
func (s *settings) addKey(ctx context.Context, password string) error {
	dir, err := os.MkdirTemp("", "switchover-restic-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	f := filepath.Join(dir, "new")
	if err := os.WriteFile(f, []byte(password), 0o600); err != nil {
		return err
	}
	_, err = s.ok(ctx, s.password, "adding the new key to "+s.repo, "key", "add", "--new-password-file", f)
	return err
}

func (p *plugin) snapshots() *sdk.Action {
	read := func(ctx context.Context, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
		if err := p.configured(); err != nil {
			return nil, "", nil, err
		}
		snaps, err := p.s.snapshots(ctx, p.s.password)
		if err != nil {
			return nil, "", nil, err
		}
		var all, latest []cty.Value
		hosts := map[string]bool{}
		for _, sn := range snaps {
			all = append(all, snapValue(sn))
			hosts[sn.Hostname] = true
		}
		lb := latestByHost(snaps)
		names := make([]string, 0, len(lb))
		for h := range lb {
			names = append(names, h)
		}
		sort.Strings(names)
		for _, h := range names {
			latest = append(latest, snapValue(lb[h]))
		}
		outs := map[string]cty.Value{"snapshots": listOf(snapshotType, all), "latest": listOf(snapshotType, latest), "kept_by_policy": cty.ListValEmpty(cty.String)}
		if policy := forgetArgs(a); len(policy) > 0 {
			out, err := p.s.ok(ctx, p.s.password, "asking restic forget --dry-run", append([]string{"forget", "--dry-run"}, policy...)...)
			if err != nil {
				return nil, "", nil, err
			}
			var groups []struct {
				Keep []snapshot `json:"keep"`
			}
			if err := json.Unmarshal(out, &groups); err != nil {
				return nil, "", nil, fmt.Errorf("reading restic forget's answer: %v", err)
			}
			var kept []string
			for _, g := range groups {
				for _, k := range g.Keep {
					kept = append(kept, k.ID)
				}
			}
			outs["kept_by_policy"] = sdk.StringList(kept)
		}
		return outs, fmt.Sprintf("%s: %d snapshots of %d hosts", p.s.repo, len(snaps), len(hosts)), nil, nil
	}
	return sdk.ReadOnlyAction("restic_snapshots",
		"Lists the repository's snapshots for the handover, changing nothing: all, each host's latest, and (with keep_* given) the ones restic forget would keep under that retention policy.",
		[]sdk.Attribute{
			{Name: "keep_last", Type: cty.Number}, {Name: "keep_daily", Type: cty.Number},
			{Name: "keep_weekly", Type: cty.Number}, {Name: "keep_monthly", Type: cty.Number}, {Name: "keep_yearly", Type: cty.Number},
		},
		[]sdk.Output{
			{Name: "snapshots", Type: cty.List(snapshotType)}, {Name: "latest", Type: cty.List(snapshotType), Description: "Each host's latest."},
			{Name: "kept_by_policy", Type: cty.List(cty.String), Description: "IDs of the snapshots the keep_* policy keeps (restic forget --dry-run)."},
		},
		read)
}

var snapshotType = cty.Object(map[string]cty.Type{"id": cty.String, "host": cty.String, "time": cty.String, "paths": cty.List(cty.String), "tags": cty.List(cty.String)})

func snapValue(sn snapshot) cty.Value {
	return cty.ObjectVal(map[string]cty.Value{"id": cty.StringVal(sn.ID), "host": cty.StringVal(sn.Hostname),
		"time": cty.StringVal(sn.Time.UTC().Format("2006-01-02T15:04:05Z")), "paths": sdk.StringList(sn.Paths), "tags": sdk.StringList(sn.Tags)})
}

func forgetArgs(a sdk.Values) []string {
	var out []string
	for _, k := range []string{"keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"} {
		if a.Has(k) {
			out = append(out, "--"+strings.ReplaceAll(k, "_", "-"), fmt.Sprint(a.Int(k)))
		}
	}
	return out
}
