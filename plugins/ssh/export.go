package sshplugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

// exportState is the local record of what was fetched: the export's
// checkpoint, kept beside the files so that a re-run fetches only what is
// missing or changed.
type exportState struct {
	Files map[string]exportEntry `json:"files"`
}

type exportEntry struct {
	Size   int64  `json:"size"`
	MTime  int64  `json:"mtime"`
	SHA256 string `json:"sha256"`
}

const exportStateFile = ".switchover-export.json"

type remoteFile struct {
	path  string // absolute on the host
	size  int64
	mtime int64
}

// openSFTP opens SFTP as root: the sftp subsystem for root, else the
// sftp-server under sudo (which must not ask for a password).
func openSFTP(ctx context.Context, c *conn) (*sftp.Client, func(), error) {
	mode, err := c.sudo(ctx)
	if err != nil {
		return nil, nil, err
	}
	if mode == "" {
		cl, err := sftp.NewClient(c.client)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: cannot start SFTP: %v", c.t, err)
		}
		return cl, func() { cl.Close() }, nil
	}
	if mode != "nopasswd" {
		return nil, nil, fmt.Errorf("%s: export as %s needs sudo without a password (sftp-server runs under sudo)", c.t, c.p.s.user)
	}
	sess, err := c.client.NewSession()
	if err != nil {
		return nil, nil, err
	}
	w, _ := sess.StdinPipe()
	r, _ := sess.StdoutPipe()
	server := `for p in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server; do [ -x "$p" ] && exec "$p"; done; echo "no sftp-server" >&2; exit 1`
	if err := sess.Start("sudo -n -- sh -c " + shellQuote(server)); err != nil {
		sess.Close()
		return nil, nil, err
	}
	cl, err := sftp.NewClientPipe(r, w)
	if err != nil {
		sess.Close()
		return nil, nil, fmt.Errorf("%s: cannot start SFTP under sudo: %v", c.t, err)
	}
	return cl, func() { cl.Close(); sess.Close() }, nil
}

// walk lists the regular files under the requested paths. It never follows
// a symbolic link, and refuses names that would leave the tree.
func walk(cl *sftp.Client, roots []string) ([]remoteFile, []string, error) {
	var files []remoteFile
	var skipped []string
	var visit func(p string, fi fs.FileInfo) error
	visit = func(p string, fi fs.FileInfo) error {
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			skipped = append(skipped, p+" (symbolic link, not followed)")
		case fi.IsDir():
			ents, err := cl.ReadDir(p)
			if err != nil {
				return fmt.Errorf("reading %s: %v", p, err)
			}
			for _, e := range ents {
				n := e.Name()
				if n == "" || n == "." || n == ".." || strings.ContainsRune(n, '/') {
					skipped = append(skipped, p+"/"+n+" (a name that leaves the tree)")
					continue
				}
				if err := visit(path.Join(p, n), e); err != nil {
					return err
				}
			}
		case fi.Mode().IsRegular():
			files = append(files, remoteFile{path: p, size: fi.Size(), mtime: fi.ModTime().Unix()})
		default:
			skipped = append(skipped, p+" (not a regular file)")
		}
		return nil
	}
	for _, r := range roots {
		r = path.Clean("/" + r)
		fi, err := cl.Lstat(r)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %v", r, err)
		}
		if err := visit(r, fi); err != nil {
			return nil, nil, err
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	return files, skipped, nil
}

func exportDir(a sdk.Values, t target) string {
	return filepath.Join(a.String("destination"), strings.ReplaceAll(t.String(), ":", "_"))
}

func loadExportState(dir string) *exportState {
	st := &exportState{Files: map[string]exportEntry{}}
	if b, err := os.ReadFile(filepath.Join(dir, exportStateFile)); err == nil {
		json.Unmarshal(b, st)
	}
	if st.Files == nil {
		st.Files = map[string]exportEntry{}
	}
	return st
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// stale lists the files that are missing locally or changed on the host.
func stale(dir string, st *exportState, files []remoteFile) []remoteFile {
	var out []remoteFile
	for _, f := range files {
		e, ok := st.Files[f.path]
		local, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f.path)))
		if !ok || e.Size != f.size || e.MTime != f.mtime || err != nil || local.Size() != f.size {
			out = append(out, f)
		}
	}
	return out
}

func (p *plugin) export() *sdk.Action {
	survey := func(ctx context.Context, c *conn, a sdk.Values) (string, *exportState, []remoteFile, []remoteFile, []string, error) {
		cl, done, err := openSFTP(ctx, c)
		if err != nil {
			return "", nil, nil, nil, nil, err
		}
		defer done()
		files, skipped, err := walk(cl, a.Strings("paths"))
		if err != nil {
			return "", nil, nil, nil, nil, fmt.Errorf("%s: %v", c.t, err)
		}
		dir := exportDir(a, c.t)
		st := loadExportState(dir)
		return dir, st, files, stale(dir, st, files), skipped, nil
	}
	plan := func(ctx context.Context, c *conn, a sdk.Values, _ []byte) *sdk.PlanResponse {
		dir, _, files, todo, skipped, err := survey(ctx, c, a)
		if err != nil {
			return errPlan(err)
		}
		if len(todo) == 0 {
			r := sdk.NoChangef("%d files of %s are in %s, matching the host", len(files), c.t, dir)
			r.Outputs = map[string]cty.Value{"manifest": cty.StringVal(filepath.Join(dir, "SHA256SUMS")), "files": cty.NumberIntVal(int64(len(files)))}
			return r
		}
		var bytes int64
		for _, f := range todo {
			bytes += f.size
		}
		r := sdk.Changef("fetch %d of %d files (%d bytes) from %s to %s", len(todo), len(files), bytes, c.t, dir)
		for _, s := range skipped {
			r.Details = append(r.Details, "skip "+s)
		}
		return r
	}
	apply := func(ctx context.Context, c *conn, a sdk.Values, ev sdk.Events, _ *sdk.ApplyRequest) *sdk.ApplyResponse {
		dir, st, files, todo, _, err := survey(ctx, c, a)
		if err != nil {
			return errApply(err)
		}
		cl, done, err := openSFTP(ctx, c)
		if err != nil {
			return errApply(err)
		}
		defer done()
		for _, f := range todo {
			if err := ctx.Err(); err != nil {
				return errApply(err)
			}
			local := filepath.Join(dir, filepath.FromSlash(f.path))
			if rel, err := filepath.Rel(dir, local); err != nil || strings.HasPrefix(rel, "..") {
				return errApply(fmt.Errorf("%s would be written outside %s", f.path, dir))
			}
			sum, err := fetch(cl, f.path, local, f.mtime)
			if err != nil {
				return errApply(fmt.Errorf("%s: fetching %s: %v", c.t, f.path, err))
			}
			st.Files[f.path] = exportEntry{Size: f.size, MTime: f.mtime, SHA256: sum}
			b, _ := json.MarshalIndent(st, "", " ")
			if err := writeAtomic(filepath.Join(dir, exportStateFile), b); err != nil {
				return errApply(err)
			}
		}
		var sums strings.Builder
		for _, f := range files {
			fmt.Fprintf(&sums, "%s  %s\n", st.Files[f.path].SHA256, strings.TrimPrefix(f.path, "/"))
		}
		manifest := filepath.Join(dir, "SHA256SUMS")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return errApply(err)
		}
		if err := writeAtomic(manifest, []byte(sums.String())); err != nil {
			return errApply(err)
		}
		return &sdk.ApplyResponse{
			Summary: fmt.Sprintf("fetched %d files from %s; manifest %s", len(todo), c.t, manifest),
			Outputs: map[string]cty.Value{"manifest": cty.StringVal(manifest), "files": cty.NumberIntVal(int64(len(files)))},
		}
	}
	return p.action("export",
		"Copies files and directories from the host to a local folder over SFTP (as root), with a SHA-256 manifest. Resumable: a re-run fetches only what is missing or changed. Never follows a symbolic link.",
		[]sdk.Attribute{
			{Name: "paths", Type: cty.List(cty.String), Required: true, Description: "Absolute paths of files or directories on the host."},
			{Name: "destination", Type: cty.String, Required: true, Description: "Local folder; files land in DESTINATION/HOST_PORT/PATH."},
		},
		[]sdk.Output{
			{Name: "manifest", Type: cty.String, Description: "The SHA256SUMS file."},
			{Name: "files", Type: cty.Number, Description: "How many files the export holds."},
		}, plan, apply)
}

// fetch copies one file to local through a temporary file, returning its SHA-256.
func fetch(cl *sftp.Client, remote, local string, mtime int64) (string, error) {
	if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
		return "", err
	}
	src, err := cl.Open(remote)
	if err != nil {
		return "", err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(local), ".fetch-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), src); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), local); err != nil {
		return "", err
	}
	t := time.Unix(mtime, 0)
	os.Chtimes(local, t, t)
	return hex.EncodeToString(h.Sum(nil)), nil
}
