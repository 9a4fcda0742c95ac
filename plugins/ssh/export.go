package ssh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	info  fs.FileInfo // as the walk saw it (lstat)
}

// openSFTP opens SFTP as root: the sftp subsystem for root, else the
// sftp-server under sudo (which must not ask for a password).
func openSFTP(ctx context.Context, c *conn) (*sftp.Client, func(), error) {
	mode, err := c.sudo(ctx)
	if err != nil {
		return nil, nil, err
	}
	// An SFTP session counts against max_sessions like a command.
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	cl, done, err := openSFTPSession(ctx, c, mode)
	if err != nil {
		<-c.sem
		return nil, nil, err
	}
	return cl, func() { done(); <-c.sem }, nil
}

func openSFTPSession(ctx context.Context, c *conn, mode string) (*sftp.Client, func(), error) {
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
	sess, err := c.newSession(ctx)
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
			files = append(files, remoteFile{path: p, size: fi.Size(), mtime: fi.ModTime().Unix(), info: fi})
		default:
			skipped = append(skipped, p+" (not a regular file)")
		}
		return nil
	}
	for _, r := range roots {
		r = path.Clean("/" + r)
		fi, err := cl.Lstat(r)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, sdk.NotFound("%s (to export)", r)
		}
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

// stale lists the files that are missing locally or changed on the host.
// A file that looks current by size and time is also compared by content:
// the local copy's SHA-256 with the recorded one, and the host's with it
// (one sha256sum over all of them), so that other content with the same
// size and time is fetched again.
func stale(ctx context.Context, c *conn, dir string, st *exportState, files []remoteFile) ([]remoteFile, error) {
	var out, check []remoteFile
	for _, f := range files {
		e, ok := st.Files[f.path]
		local := filepath.Join(dir, filepath.FromSlash(f.path))
		li, err := os.Lstat(local)
		if !ok || e.Size != f.size || e.MTime != f.mtime || err != nil || !li.Mode().IsRegular() || li.Size() != f.size {
			out = append(out, f)
			continue
		}
		if sum, err := sdk.FileSHA256(local); err != nil || sum != e.SHA256 {
			out = append(out, f)
			continue
		}
		check = append(check, f)
	}
	if len(check) == 0 {
		return out, nil
	}
	var list []byte
	for _, f := range check {
		list = append(append(list, f.path...), 0)
	}
	res, err := c.runOK(ctx, "hashing the exported files", "xargs -0 sha256sum -z -- 2>/dev/null; true", list)
	if err != nil {
		return nil, err
	}
	remote := map[string]string{}
	for _, rec := range strings.Split(res, "\x00") {
		if sum, name, ok := strings.Cut(rec, "  "); ok {
			remote[name] = sum
		}
	}
	for _, f := range check {
		if remote[f.path] != st.Files[f.path].SHA256 {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

// sumLine is a SHA256SUMS line as sha256sum writes it: a name with a
// backslash or a newline is escaped, and the line starts with a backslash.
func sumLine(sum, name string) string {
	if strings.ContainsAny(name, "\\\n\r") {
		name = strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r").Replace(name)
		return "\\" + sum + "  " + name + "\n"
	}
	return sum + "  " + name + "\n"
}

// safeLocal refuses a local path under dir that passes through a symbolic
// link (a planted link in the destination would send files elsewhere).
func safeLocal(dir, local string) error {
	rel, err := filepath.Rel(dir, local)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s would be written outside %s", local, dir)
	}
	p := dir
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("the destination %s is a symbolic link; refusing to write through it", p)
	}
	for _, part := range strings.Split(filepath.Dir(rel), string(filepath.Separator)) {
		if part == "." {
			continue
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
			return fmt.Errorf("%s in the destination is a symbolic link or not a directory; refusing to write through it", p)
		}
	}
	return nil
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
		todo, err := stale(ctx, c, dir, st, files)
		return dir, st, files, todo, skipped, err
	}
	plan := func(ctx context.Context, c *conn, a sdk.Values, _ []byte) *sdk.PlanResponse {
		dir, _, files, todo, skipped, err := survey(ctx, c, a)
		if err != nil {
			return sdk.PlanError(err)
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
			return sdk.ApplyError(err)
		}
		cl, done, err := openSFTP(ctx, c)
		if err != nil {
			return sdk.ApplyError(err)
		}
		defer done()
		for _, f := range todo {
			if err := ctx.Err(); err != nil {
				return sdk.ApplyError(err)
			}
			local := filepath.Join(dir, filepath.FromSlash(f.path))
			if err := safeLocal(dir, local); err != nil {
				return sdk.ApplyError(err)
			}
			sum, err := fetch(cl, f, local)
			if err != nil {
				return sdk.ApplyError(fmt.Errorf("%s: fetching %s: %v", c.t, f.path, err))
			}
			st.Files[f.path] = exportEntry{Size: f.size, MTime: f.mtime, SHA256: sum}
			b, _ := json.MarshalIndent(st, "", " ")
			if err := sdk.WriteFileAtomic(filepath.Join(dir, exportStateFile), b, 0o600); err != nil {
				return sdk.ApplyError(err)
			}
		}
		var sums strings.Builder
		for _, f := range files {
			sums.WriteString(sumLine(st.Files[f.path].SHA256, strings.TrimPrefix(f.path, "/")))
		}
		manifest := filepath.Join(dir, "SHA256SUMS")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return sdk.ApplyError(err)
		}
		if err := sdk.WriteFileAtomic(manifest, []byte(sums.String()), 0o600); err != nil {
			return sdk.ApplyError(err)
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

// fetch copies one file to local through a temporary file, returning its
// SHA-256. The file opened must be the one the walk saw: SFTP opens by
// path and follows links, so a file swapped for a symbolic link (to
// /etc/shadow) since is caught by comparing the open file's attributes
// (fstat) with the walk's lstat, and by the bytes read.
func fetch(cl *sftp.Client, f remoteFile, local string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
		return "", err
	}
	src, err := cl.Open(f.path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	if fi, err := src.Stat(); err != nil {
		return "", err
	} else if !sameFile(f.info, fi) {
		return "", fmt.Errorf("the file changed or was replaced (by a link?) while it was exported; refusing it, run again")
	}
	mtime := f.mtime
	tmp, err := os.CreateTemp(filepath.Dir(local), ".fetch-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(src, f.size+1))
	if err != nil {
		tmp.Close()
		return "", err
	}
	if n != f.size {
		tmp.Close()
		return "", fmt.Errorf("read %d bytes, the file had %d: it changed while it was exported; run again", n, f.size)
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

// sameFile compares what an open file's fstat says with the walk's lstat.
func sameFile(walked, opened fs.FileInfo) bool {
	if walked == nil || !opened.Mode().IsRegular() || walked.Size() != opened.Size() || !walked.ModTime().Equal(opened.ModTime()) || walked.Mode() != opened.Mode() {
		return false
	}
	a, ok1 := walked.Sys().(*sftp.FileStat)
	b, ok2 := opened.Sys().(*sftp.FileStat)
	return !ok1 || !ok2 || a.UID == b.UID && a.GID == b.GID
}
