package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

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
	r, err := s.runCall(ctx, call{password: password, args: []string{"key", "list"}, exact: true})
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

// rotation is the rotation's checkpoint: "adding" is durable before the
// key is added (with the time), "added" names the new key.
type rotation struct {
	Phase   string    `json:"phase"`
	NewKey  string    `json:"new_key,omitempty"`
	Started time.Time `json:"started,omitempty"`
}

// ours: the key newID was added by this rotation (its checkpoint says so),
// so new_password being the configured password is a resumed rotation,
// not the old provider's password given as a new one.
func ours(checkpoint []byte, keys []repoKey, newID string) bool {
	var rt rotation
	if json.Unmarshal(checkpoint, &rt) != nil {
		return false
	}
	if rt.NewKey != "" {
		return rt.NewKey == newID
	}
	if rt.Phase != "adding" {
		return false
	}
	for _, k := range keys {
		if k.ID == newID {
			t, err := time.ParseInLocation("2006-01-02 15:04:05", k.Created, time.Local)
			return err == nil && !t.Before(rt.Started.Add(-time.Minute))
		}
	}
	return false
}

func (p *plugin) rotateKey() *sdk.Action {
	type view struct {
		newOpens bool
		newID    string
		remove   []repoKey
		addWith  string // the password that opens it, to add the new key with
	}
	look := func(ctx context.Context, a sdk.Values, checkpoint []byte) (*view, error) {
		s := p.s
		newPw := a.String("new_password")
		v := &view{}
		keys, opens, err := s.keys(ctx, newPw)
		if err != nil {
			return nil, err
		}
		if opens {
			v.newOpens, v.newID = true, current(keys)
			v.remove = toRemove(keys, v.newID, a.Strings("remove_keys"))
			if newPw == s.currentPassword() && len(v.remove) > 0 && !ours(checkpoint, keys, v.newID) {
				// Not a rotation this step began: the old password given
				// as the new one would keep the old provider's key.
				return nil, fmt.Errorf("new_password is the repository's current password and other keys remain (%s): give a new one, normally secret(\"...\")", describeKeys(v.remove))
			}
			return v, nil
		}
		// Not added yet (or killed before): a password that opens the
		// repository adds it, the configured one or the rotated one.
		for _, pw := range s.candidates() {
			if pw == "" || pw == newPw {
				continue
			}
			keys, opens, err := s.keys(ctx, pw)
			if err != nil {
				return nil, err
			}
			if opens {
				v.remove, v.addWith = toRemove(keys, "", a.Strings("remove_keys")), pw
				return v, nil
			}
		}
		return nil, fmt.Errorf("neither the configured password nor new_password opens %s (a rotation killed before it added its key needs the old password as the plugin's password)", s.repo)
	}
	plan := func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
		a := req.Attributes
		if !a.IsKnown("new_password") {
			keys, opens, err := p.s.keys(ctx, p.s.currentPassword())
			if err != nil {
				return sdk.PlanError(err)
			}
			if !opens {
				return sdk.PlanError(fmt.Errorf("the configured password does not open %s", p.s.repo))
			}
			r := sdk.Changef("add a key for a new password to %s, then remove %d keys", p.s.repo, len(toRemove(keys, "", a.Strings("remove_keys"))))
			r.Details = []string{"remove: " + describeKeys(toRemove(keys, "", a.Strings("remove_keys"))), masterKeyNote}
			return r
		}
		v, err := look(ctx, a, req.Checkpoint)
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
		r := sdk.Changef("%s: %s", p.s.repo, strings.Join(what, ", then "))
		r.Details = []string{masterKeyNote}
		return r
	}
	apply := func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		a := req.Attributes
		checkpoint := req.Checkpoint
		v, err := look(ctx, a, checkpoint)
		if err != nil {
			return sdk.ApplyError(err)
		}
		s := p.s
		newPw := a.String("new_password")
		if !v.newOpens {
			// Durable before the key exists: a resumed run knows the key
			// it finds for new_password is this rotation's.
			checkpoint, _ = json.Marshal(rotation{Phase: "adding", Started: time.Now()})
			if err := ev.Checkpoint(ctx, checkpoint); err != nil {
				return sdk.ApplyError(err)
			}
			if err := s.addKey(ctx, v.addWith, newPw); err != nil {
				return sdk.ApplyError(err)
			}
			// The new key must open the repository before any key goes.
			if v, err = look(ctx, a, checkpoint); err != nil {
				return sdk.ApplyError(err)
			}
			if !v.newOpens {
				return sdk.ApplyError(fmt.Errorf("the key just added does not open %s: no key removed", s.repo))
			}
		}
		b, _ := json.Marshal(rotation{Phase: "added", NewKey: v.newID})
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
		s.rotatedTo(newPw)
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("%s: new key %s, removed %d keys", s.repo, v.newID, len(v.remove)), Outputs: map[string]cty.Value{"key_id": cty.StringVal(v.newID)},
			Diagnostics: sdk.Diagnostics{sdk.LeftForPerson("The repository keeps the old master key",
				"%s: %s. Replace it with restic_migrate and delete it, or accept that risk in writing.", displayRepo(s.repo), masterKeyNote)}}
	}
	return &sdk.Action{
		Name:        "restic_rotate_key",
		Description: "Adds a repository key for new_password (normally secret(\"...\")), checks that it opens the repository, then removes the keys the old provider knows: all others, or remove_keys. The new key is never removed, so a working key always stays; killed at any instant, the next run finishes it with the old password or the new one as the plugin's password (or rotated_password). The master key stays the same: whoever copied an old key file and knows its password still reads the repository; restic_migrate takes the data back.",
		Attributes: []sdk.Attribute{
			{Name: "new_password", Type: cty.String, Required: true, Sensitive: true, Description: "The new repository password."},
			{Name: "remove_keys", Type: cty.List(cty.String), Description: "IDs of the keys to remove (default: every key but the new one)."},
		},
		Outputs:   []sdk.Output{{Name: "key_id", Type: cty.String, Description: "The new key's ID."}},
		PlanFunc:  plan,
		ApplyFunc: apply,
	}
}

// masterKeyNote is what a rotation does not do.
const masterKeyNote = "restic's master key stays the same: a copy of an old key file with its password still opens the repository (restic_migrate makes a repository with a master key of its own)"

// currentPassword is the password commands use now.
func (s *settings) currentPassword() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.password
}

// candidates are the passwords that may open the repository: the one in
// use, the rotated one, the configured one.
func (s *settings) candidates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return []string{s.password, s.rotated, s.configured}
}

// rotatedTo: after a rotation, the plugin's commands use the new password.
func (s *settings) rotatedTo(pw string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.password, s.rotated = pw, pw
}

// addKey adds a key for password, opened with with; both go to restic on
// pipes.
func (s *settings) addKey(ctx context.Context, with, password string) error {
	r, err := s.runCall(ctx, call{password: with, newPassword: password, args: []string{"key", "add"}, exact: true})
	if err != nil {
		return err
	}
	if r.exit != 0 {
		return fmt.Errorf("adding the new key to %s: %s", s.repo, resticError(r))
	}
	return nil
}

func (p *plugin) snapshots() *sdk.Action {
	read := func(ctx context.Context, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
		snaps, err := p.s.snapshots(ctx, p.s.currentPassword())
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
			out, err := p.s.ok(ctx, p.s.currentPassword(), "asking restic forget --dry-run", append([]string{"forget", "--dry-run"}, policy...)...)
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
