package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

// snapshot's original: the snapshot a copy was made from.
type copied struct {
	ID       string `json:"id"`
	Original string `json:"original"`
}

// dest is the settings of the repository a migration writes: the plugin's
// backend environment, options, restic and cache, another location and
// password. It shares the plugin's lock (one restic at a time).
func (s *settings) dest(repo, password string) *settings {
	return &settings{repo: repo, password: password, configured: password, env: s.env, options: s.options, restic: s.restic,
		cacheDir: s.cacheDir, tmpDir: s.tmpDir, timeout: s.timeout}
}

// originals are the snapshots of the source a repository holds copies of
// (restic copy records the source snapshot as original).
func (s *settings) originals(ctx context.Context) (map[string]bool, error) {
	out, err := s.ok(ctx, s.password, "listing the snapshots of "+displayRepo(s.repo), "snapshots")
	if err != nil {
		return nil, err
	}
	var snaps []copied
	if err := json.Unmarshal(out, &snaps); err != nil {
		return nil, fmt.Errorf("reading restic's snapshot list: %v", err)
	}
	m := map[string]bool{}
	for _, sn := range snaps {
		m[sn.Original] = true
	}
	return m, nil
}

// missing are the source's snapshots the destination has no copy of.
func missing(src []snapshot, have map[string]bool) []snapshot {
	var out []snapshot
	for _, sn := range src {
		if !have[sn.ID] {
			out = append(out, sn)
		}
	}
	return out
}

// halfInitialized: a local repository directory that a killed restic init
// left (key files, no config): its keys (for new_password, each with a
// master key of its own) would stand in the way of the next init's, so
// they are removed. Any other content is refused, never removed.
func halfInitialized(repo string) (bool, error) {
	if strings.Contains(repo, ":") && !filepath.IsAbs(repo) {
		return false, nil // a remote backend: restic init says what is there
	}
	if _, err := os.Stat(filepath.Join(repo, "config")); err == nil {
		return false, nil
	}
	snaps, _ := filepath.Glob(filepath.Join(repo, "snapshots", "*"))
	packs, _ := filepath.Glob(filepath.Join(repo, "data", "*", "*"))
	keys, _ := filepath.Glob(filepath.Join(repo, "keys", "*"))
	if len(snaps) > 0 || len(packs) > 0 {
		return false, fmt.Errorf("%s holds data but no config: not a repository this migration began; choose another location", repo)
	}
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return false, err
		}
	}
	return len(keys) > 0, nil
}

func (p *plugin) migrate() *sdk.Action {
	// look: the source's snapshots; whether new_password opens the
	// destination, and which snapshots it has no copy of yet.
	look := func(ctx context.Context, a sdk.Values) (src, dst *settings, snaps, todo []snapshot, exists bool, err error) {
		src = p.s
		dst = src.dest(a.String("to"), a.String("new_password"))
		if dst.repo == src.repo {
			err = fmt.Errorf("to is the repository itself: give a new location")
			return
		}
		if snaps, err = src.snapshots(ctx, src.currentPassword()); err != nil {
			return
		}
		r, err := dst.runCall(ctx, call{password: dst.password, args: []string{"cat", "config"}, exact: true})
		switch {
		case err != nil:
			return
		case r.exit != 0 && (bytes.Contains(r.stderr, []byte("unable to open config file")) || bytes.Contains(r.stderr, []byte("Is there a repository"))):
			return src, dst, snaps, snaps, false, nil // not made yet (or a killed init's remains)
		case r.exit != 0 && wrongPassword(r):
			err = fmt.Errorf("%s is a repository that new_password does not open: not one this migration made; choose another location", displayRepo(dst.repo))
			return
		case r.exit != 0:
			err = fmt.Errorf("reading %s: %s", displayRepo(dst.repo), resticError(r))
			return
		}
		have, err := dst.originals(ctx)
		if err != nil {
			return
		}
		return src, dst, snaps, missing(snaps, have), true, nil
	}
	plan := func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
		a := req.Attributes
		if !a.AllKnown() {
			return sdk.Changef("decided during apply: new_password is made then")
		}
		src, dst, snaps, todo, exists, err := look(ctx, a)
		if err != nil {
			return sdk.PlanError(dst.scrub(err))
		}
		if exists && len(todo) == 0 {
			r := sdk.NoChangef("%s holds a copy of each of the %d snapshots of %s, under a master key of its own", displayRepo(dst.repo), len(snaps), displayRepo(src.repo))
			r.Outputs = map[string]cty.Value{"repository": cty.StringVal(displayRepo(dst.repo)), "snapshots": cty.NumberIntVal(int64(len(snaps)))}
			return r
		}
		var what []string
		if !exists {
			what = append(what, fmt.Sprintf("create %s with a master key of its own (restic init --copy-chunker-params)", displayRepo(dst.repo)))
		}
		what = append(what, fmt.Sprintf("copy %d of %d snapshots", len(todo), len(snaps)), "check it and test-restore samples")
		r := sdk.Changef("%s", strings.Join(what, ", then "))
		r.Details = []string{"the old repository " + displayRepo(src.repo) + " stays as it is until a person deletes it"}
		return r
	}
	apply := func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		a := req.Attributes
		src, dst, snaps, todo, exists, err := look(ctx, a)
		if err != nil {
			return sdk.ApplyError(dst.scrub(err))
		}
		if !exists {
			if _, err := halfInitialized(dst.repo); err != nil {
				return sdk.ApplyError(err)
			}
			ev.Log("creating " + displayRepo(dst.repo))
			if err := dst.runOK(ctx, call{password: dst.password, args: []string{"init", "--copy-chunker-params"}, fromRepo: src.repo, fromPasswd: src.currentPassword(), exact: true},
				"creating "+displayRepo(dst.repo)); err != nil {
				return sdk.ApplyError(err)
			}
		}
		if len(todo) > 0 {
			ev.Log(fmt.Sprintf("copying %d snapshots", len(todo)))
			// Idempotent: restic copy skips what the destination has.
			if err := dst.runOK(ctx, call{password: dst.password, args: []string{"copy"}, fromRepo: src.repo, fromPasswd: src.currentPassword(), exact: true},
				"copying the snapshots of "+displayRepo(src.repo)); err != nil {
				return sdk.ApplyError(err)
			}
		}
		have, err := dst.originals(ctx)
		if err != nil {
			return sdk.ApplyError(dst.scrub(err))
		}
		if left := missing(snaps, have); len(left) > 0 {
			return sdk.ApplyError(fmt.Errorf("after the copy, %s lacks %d snapshots of %s (%s, ...)", displayRepo(dst.repo), len(left), displayRepo(src.repo), left[0].ShortID))
		}
		check, restored, err := dst.prove(ctx, a)
		if err != nil {
			return sdk.ApplyError(dst.scrub(fmt.Errorf("the new repository %s: %v", displayRepo(dst.repo), err)))
		}
		resp := &sdk.ApplyResponse{
			Summary: fmt.Sprintf("%s holds the %d snapshots of %s under a master key of its own; check passed (%s), %d files restored and verified", displayRepo(dst.repo), len(snaps), displayRepo(src.repo), check, restored),
			Outputs: map[string]cty.Value{"repository": cty.StringVal(displayRepo(dst.repo)), "snapshots": cty.NumberIntVal(int64(len(snaps)))},
		}
		resp.Diagnostics = append(resp.Diagnostics, sdk.LeftForPerson("Delete the old repository",
			"Delete %s once the backup clients write to %s: it still holds every snapshot under the master key the old provider may have kept.", displayRepo(src.repo), displayRepo(dst.repo)))
		return resp
	}
	return &sdk.Action{
		Name:        "restic_migrate",
		Description: "Takes the data back from a master key the old provider may have copied (a key rotation keeps restic's master key): a new repository at to with a master key of its own (restic init --copy-chunker-params), restic copy of every snapshot, then restic check (read_data_subset) and a test restore of samples from each backup set's latest snapshot, all with new_password. Killed at any instant it resumes (the copy skips what is there); the old repository is never changed: deleting it is left to a person.",
		Attributes: []sdk.Attribute{
			{Name: "to", Type: cty.String, Required: true, Description: "The new repository: a path, sftp:..., rest:... (give a URL with credentials through a sensitive variable)."},
			{Name: "new_password", Type: cty.String, Required: true, Sensitive: true, Description: "Its password, normally secret(\"...\")."},
			{Name: "read_data_subset", Type: cty.String, Description: "Part of the new repository's data restic check reads (default \"10%\"; \"all\")."},
			{Name: "sample_files", Type: cty.Number, Description: "Files per backup set to test-restore from the new repository (default 5)."},
		},
		Outputs:   []sdk.Output{{Name: "repository", Type: cty.String, Description: "The new repository, as restic shows it."}, {Name: "snapshots", Type: cty.Number, Description: "Snapshots copied and present."}},
		PlanFunc:  plan,
		ApplyFunc: apply,
	}
}

// scrub: an error without the repository URL's password (nil settings:
// as it is).
func (s *settings) scrub(err error) error {
	if s == nil || err == nil {
		return err
	}
	return fmt.Errorf("%s", s.scrubber().Replace(err.Error()))
}

// runOK runs a command that must succeed; its errors are scrubbed of both
// repositories' URL passwords by the action's wrapper and here.
func (s *settings) runOK(ctx context.Context, c call, what string) error {
	r, err := s.runCall(ctx, c)
	if err != nil {
		return err
	}
	if r.exit != 0 {
		return fmt.Errorf("%s: %s", what, s.scrubber().Replace(resticError(r)))
	}
	return nil
}

// prove checks a repository and test-restores samples from each backup
// set's latest snapshot: what restic_verify does, without the freshness.
func (s *settings) prove(ctx context.Context, a sdk.Values) (string, int, error) {
	sub := a.String("read_data_subset")
	if sub == "" {
		sub = "10%"
	}
	args, what := []string{"check", "--read-data-subset=" + sub}, sub+" of the data read"
	if sub == "all" || sub == "100%" {
		args, what = []string{"check", "--read-data"}, "all data read"
	}
	r, err := s.run(ctx, s.password, args...)
	if err != nil {
		return "", 0, err
	}
	if r.exit != 0 {
		return "", 0, fmt.Errorf("restic check failed: %s", checkErrors(r))
	}
	n := 5
	if a.Has("sample_files") {
		n = int(a.Int("sample_files"))
	}
	snaps, err := s.snapshots(ctx, s.password)
	if err != nil {
		return "", 0, err
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	restored := 0
	for _, sn := range latestBySet(snaps) {
		if n == 0 {
			break
		}
		files, err := s.files(ctx, s.password, sn.ID)
		if err != nil {
			return "", 0, fmt.Errorf("snapshot %s of %s: %v", sn.ShortID, sn.Hostname, err)
		}
		pick, _ := sample(files, nil, n, rng)
		vals, err := s.restoreAndCompare(ctx, s.password, sn, pick)
		if err != nil {
			return "", 0, err
		}
		restored += len(vals)
	}
	return what, restored, nil
}
