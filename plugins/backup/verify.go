package backup

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

type snapshot struct {
	ID       string    `json:"id"`
	ShortID  string    `json:"short_id"`
	Time     time.Time `json:"time"`
	Paths    []string  `json:"paths"`
	Hostname string    `json:"hostname"`
	Tags     []string  `json:"tags"`
}

type node struct {
	Type       string `json:"type"`
	Path       string `json:"path"`
	Size       int64  `json:"size"`
	StructType string `json:"struct_type"`
}

func (s *settings) snapshots(ctx context.Context, password string) ([]snapshot, error) {
	out, err := s.ok(ctx, password, "listing the snapshots of "+s.repo, "snapshots")
	if err != nil {
		return nil, err
	}
	var snaps []snapshot
	if err := json.Unmarshal(out, &snaps); err != nil {
		return nil, fmt.Errorf("reading restic's snapshot list: %v", err)
	}
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].Time.Before(snaps[j].Time) })
	return snaps, nil
}

// latestByHost is each host's newest snapshot.
func latestByHost(snaps []snapshot) map[string]snapshot {
	out := map[string]snapshot{}
	for _, sn := range snaps {
		if cur, ok := out[sn.Hostname]; !ok || sn.Time.After(cur.Time) {
			out[sn.Hostname] = sn
		}
	}
	return out
}

// backupSet is a host and the paths it backs up, as restic groups its
// snapshots ("latest" is per host and paths).
type backupSet struct {
	host  string
	paths []string
}

func (b backupSet) key() string { return b.host + "\x00" + strings.Join(b.paths, "\x00") }

func (b backupSet) String() string { return b.host + ":" + strings.Join(b.paths, ",") }

func setOf(sn snapshot) backupSet {
	ps := append([]string(nil), sn.Paths...)
	sort.Strings(ps)
	return backupSet{sn.Hostname, ps}
}

// latestBySet is each backup set's newest snapshot, by host and then paths.
func latestBySet(snaps []snapshot) []snapshot {
	latest := map[string]snapshot{}
	for _, sn := range snaps {
		k := setOf(sn).key()
		if cur, ok := latest[k]; !ok || sn.Time.After(cur.Time) {
			latest[k] = sn
		}
	}
	out := make([]snapshot, 0, len(latest))
	for _, sn := range latest {
		out = append(out, sn)
	}
	sort.Slice(out, func(i, j int) bool { return setOf(out[i]).String() < setOf(out[j]).String() })
	return out
}

// files lists the regular files of a snapshot.
func (s *settings) files(ctx context.Context, password, id string) ([]node, error) {
	out, err := s.ok(ctx, password, "listing snapshot "+id, "ls", id)
	if err != nil {
		return nil, err
	}
	var files []node
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var n node
		if json.Unmarshal(sc.Bytes(), &n) == nil && n.StructType == "node" && n.Type == "file" {
			files = append(files, n)
		}
	}
	return files, nil
}

var (
	snapType     = cty.Object(map[string]cty.Type{"host": cty.String, "id": cty.String, "time": cty.String, "paths": cty.List(cty.String), "age": cty.String})
	restoredType = cty.Object(map[string]cty.Type{"host": cty.String, "snapshot": cty.String, "path": cty.String, "size": cty.Number, "sha256": cty.String})
)

func listOf(t cty.Type, vs []cty.Value) cty.Value {
	if len(vs) == 0 {
		return cty.ListValEmpty(t)
	}
	return cty.ListVal(vs)
}

// sample picks n files at random (the named ones first, which must exist).
func sample(files []node, named []string, n int, rng *rand.Rand) ([]node, error) {
	byPath := map[string]node{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	var out []node
	for _, p := range named {
		f, ok := byPath[p]
		if !ok {
			return nil, fmt.Errorf("the snapshot has no file %s", p)
		}
		out = append(out, f)
	}
	if len(named) > 0 {
		return out, nil
	}
	idx := rng.Perm(len(files))
	for _, i := range idx {
		if len(out) == n {
			break
		}
		out = append(out, files[i])
	}
	return out, nil
}

// restoreAndCompare restores the sampled files of a snapshot in one
// restic restore --verify (restic reads each restored file back and checks
// it against the snapshot's blobs) into this process's temporary directory,
// and checks each file's size against the snapshot's listing; the SHA-256
// of each is the evidence.
func (s *settings) restoreAndCompare(ctx context.Context, password string, sn snapshot, files []node) ([]cty.Value, error) {
	if len(files) == 0 {
		return nil, nil
	}
	tmp, err := os.MkdirTemp(s.tmpDir, "restore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	args := []string{"restore", sn.ID, "--target", tmp, "--verify"}
	for _, f := range files {
		args = append(args, "--include", f.Path)
	}
	if _, err := s.ok(ctx, password, fmt.Sprintf("the test restore of %d files from snapshot %s of %s", len(files), sn.ShortID, sn.Hostname), args...); err != nil {
		return nil, err
	}
	var out []cty.Value
	for _, f := range files {
		path := filepath.Join(tmp, filepath.FromSlash(f.Path))
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("the test restore of %s from snapshot %s of %s did not produce the file: %v", f.Path, sn.ShortID, sn.Hostname, err)
		}
		if fi.Size() != f.Size {
			return nil, fmt.Errorf("%s from snapshot %s of %s: the restored file has %d bytes, the snapshot says %d", f.Path, sn.ShortID, sn.Hostname, fi.Size(), f.Size)
		}
		sum, err := sdk.FileSHA256(path)
		if err != nil {
			return nil, err
		}
		out = append(out, cty.ObjectVal(map[string]cty.Value{"host": cty.StringVal(sn.Hostname), "snapshot": cty.StringVal(sn.ShortID),
			"path": cty.StringVal(f.Path), "size": cty.NumberIntVal(f.Size), "sha256": cty.StringVal(sum)}))
	}
	return out, nil
}

func (p *plugin) verify() *sdk.Action {
	run := func(ctx context.Context, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
		s := p.s
		maxAge, d := a.Duration("max_age", 26*time.Hour)
		if err := d.Err(); err != nil {
			return nil, "", nil, err
		}
		pw := s.currentPassword()
		snaps, err := s.snapshots(ctx, pw)
		if err != nil {
			return nil, "", nil, err
		}
		sets := latestBySet(snaps)
		hosts := a.Strings("hosts")
		if len(hosts) == 0 {
			for h := range latestByHost(snaps) {
				hosts = append(hosts, h)
			}
			sort.Strings(hosts)
		}
		if len(hosts) == 0 {
			return nil, "", nil, fmt.Errorf("%s holds no snapshot", s.repo)
		}
		var snapVals, restored []cty.Value
		var problems []string
		var chosen []snapshot
		want := a.Strings("paths")
		for _, h := range hosts {
			// The host's backup sets: with paths, the sets that back up
			// each of them; else every set. Each must be fresh.
			var mine []snapshot
			var others []string
			for _, sn := range sets {
				switch {
				case sn.Hostname != h:
				case hasAll(sn.Paths, want):
					mine = append(mine, sn)
				default:
					others = append(others, strings.Join(sn.Paths, ", "))
				}
			}
			if len(mine) == 0 {
				if len(others) == 0 {
					problems = append(problems, fmt.Sprintf("%s has no snapshot of host %s", s.repo, h))
				} else {
					problems = append(problems, fmt.Sprintf("host %s has no backup set of %s (its sets: %s)", h, strings.Join(want, ", "), strings.Join(others, "; ")))
				}
				continue
			}
			for _, sn := range mine {
				age := time.Since(sn.Time)
				if age > maxAge {
					hint := ""
					if len(want) == 0 && len(mine) > 1 {
						hint = " (every backup set of a host must be fresh; paths = [...] names the sets that must)"
					}
					problems = append(problems, fmt.Sprintf("the latest snapshot of %s's backup set %s (%s, %s) is %s old, more than max_age %s%s", h, strings.Join(sn.Paths, ", "), sn.ShortID, sn.Time.UTC().Format(time.RFC3339), roundAge(age), maxAge, hint))
				}
				chosen = append(chosen, sn)
				snapVals = append(snapVals, cty.ObjectVal(map[string]cty.Value{"host": cty.StringVal(h), "id": cty.StringVal(sn.ID),
					"time": cty.StringVal(sn.Time.UTC().Format(time.RFC3339)), "paths": sdk.StringList(sn.Paths), "age": cty.StringVal(roundAge(age))}))
			}
		}
		if len(problems) > 0 {
			return nil, "", nil, fmt.Errorf("%s", strings.Join(problems, "; "))
		}
		checkArgs := []string{"check"}
		checkWhat := "structure only"
		if sub := a.String("read_data_subset"); sub == "all" || sub == "100%" {
			checkArgs, checkWhat = append(checkArgs, "--read-data"), "all data read"
		} else if sub != "" {
			checkArgs, checkWhat = append(checkArgs, "--read-data-subset="+sub), sub+" of the data read"
		}
		r, err := s.run(ctx, pw, checkArgs...)
		if err != nil {
			return nil, "", nil, err
		}
		if r.exit != 0 {
			return nil, "", nil, fmt.Errorf("restic check of %s failed: %s", s.repo, checkErrors(r))
		}
		n := 5
		if a.Has("sample_files") {
			n = int(a.Int("sample_files"))
		}
		rng := rand.New(rand.NewSource(time.Now().UnixNano()))
		for _, sn := range chosen {
			if n == 0 && !a.Has("files") {
				break
			}
			files, err := s.files(ctx, pw, sn.ID)
			if err != nil {
				return nil, "", nil, fmt.Errorf("snapshot %s of %s: %v", sn.ShortID, sn.Hostname, err)
			}
			pick, err := sample(files, a.Strings("files"), n, rng)
			if err != nil {
				return nil, "", nil, fmt.Errorf("snapshot %s of %s: %v", sn.ShortID, sn.Hostname, err)
			}
			vals, err := s.restoreAndCompare(ctx, pw, sn, pick)
			if err != nil {
				return nil, "", nil, err
			}
			restored = append(restored, vals...)
		}
		outs := map[string]cty.Value{
			"snapshots": listOf(snapType, snapVals),
			"check":     cty.StringVal("no errors were found (" + checkWhat + ")"),
			"restored":  listOf(restoredType, restored),
		}
		sum := fmt.Sprintf("%s: %d backup sets of %d hosts backed up within %s, check passed (%s), %d files restored and verified", s.repo, len(chosen), len(hosts), maxAge, checkWhat, len(restored))
		return outs, sum, nil, nil
	}
	return sdk.ReadOnlyAction("restic_verify",
		"Proves the backups: the latest snapshot of each backup set (host and paths, as restic groups them; with paths, the sets that back them up) is younger than max_age, restic check passes (read_data_subset reads pack data: a plain check misses a corrupted pack), and sample files of each set restore (one restic restore --verify per set, which checks their content against the snapshot) with the size the snapshot lists. Fails when the evidence is bad; changes nothing. The evidence is the step's outputs.",
		[]sdk.Attribute{
			{Name: "hosts", Type: cty.List(cty.String), Description: "Hosts that must have fresh backups (default: every host in the repository)."},
			{Name: "paths", Type: cty.List(cty.String), Description: "Selects the backup sets that must be fresh: those whose snapshots back up each of these paths (default: every set of each host)."},
			{Name: "max_age", Type: sdk.DurationType, Description: "Maximum age of a backup set's latest snapshot (default 26h)."},
			{Name: "read_data_subset", Type: cty.String, Description: "Part of the pack data restic check reads: \"5%\", \"1/20\", \"all\" (default: none, structure only)."},
			{Name: "sample_files", Type: cty.Number, Description: "Files per backup set, chosen at random from its latest snapshot, to test-restore (default 5)."},
			{Name: "files", Type: cty.List(cty.String), Description: "Files to test-restore instead (paths as in the snapshot)."},
		},
		[]sdk.Output{
			{Name: "snapshots", Type: cty.List(snapType), Description: "Each backup set's latest snapshot."},
			{Name: "check", Type: cty.String},
			{Name: "restored", Type: cty.List(restoredType), Description: "Files test-restored, with their SHA-256."},
		},
		run)
}

// checkErrors are the lines of restic check that name a problem.
func checkErrors(r *result) string {
	var lines []string
	for _, l := range strings.Split(string(r.stdout)+"\n"+string(r.stderr), "\n") {
		l = strings.TrimSpace(l)
		low := strings.ToLower(l)
		if strings.HasPrefix(low, "pack ") || strings.Contains(low, "error") || strings.Contains(low, "does not exist") || strings.Contains(low, "fatal") {
			if !strings.Contains(low, "no errors were found") && !strings.HasPrefix(l, "{") {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) == 0 {
		return resticError(r)
	}
	if len(lines) > 6 {
		lines = append(lines[:6], fmt.Sprintf("(%d more)", len(lines)-6))
	}
	return strings.Join(lines, "; ")
}

// hasAll: every one of want is among paths.
func hasAll(paths, want []string) bool {
	for _, w := range want {
		if !contains(paths, w) {
			return false
		}
	}
	return true
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func roundAge(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	}
	return d.Round(time.Second).String()
}
