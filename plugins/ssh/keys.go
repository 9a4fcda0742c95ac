package ssh

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/plugins/sdk"
)

// keyFile is one user's authorized_keys as read from the host.
type keyFile struct {
	user, path string
	content    string
}

// listKeyFiles reads the authorized_keys of one user, or of every user with
// one (root included). Each file comes back as "MARK USER PATH", then either
// "OWNER NAME NLINK" and its content, or "REFUSED why" for a file switchover
// will not touch: a symbolic link as the file or as its .ssh directory (a
// planted ~/.ssh -> /root/.ssh), a file with other hard links, or one owned
// by neither the user nor root (sshd's StrictModes refuses those too).
func listKeyFiles(ctx context.Context, c *conn, user string) ([]keyFile, error) {
	mark := "### switchover-" + nonce() + " "
	emit := `emit() {
  f="$2/.ssh/authorized_keys"
  [ -e "$f" ] || [ -L "$f" ] || return 0
  printf 'MARK%s %s\n' "$1" "$f"
  if [ -L "$2/.ssh" ]; then echo "REFUSED $2/.ssh is a symbolic link"; return 0; fi
  if [ -L "$f" ]; then echo "REFUSED it is a symbolic link"; return 0; fi
  if [ ! -f "$f" ]; then echo "REFUSED it is not a regular file"; return 0; fi
  printf 'OWNER %s\n' "$(stat -c '%U %h' "$f")"
  cat "$f"; printf '\n'
}
`
	script := emit + `getent passwd | while IFS=: read -r u x uid gid g home shell; do emit "$u" "$home"; done`
	if user != "" {
		script = "set -- " + shellQuote(user) + "\n" + emit + `home=$(getent passwd "$1") || { echo "no such user: $1" >&2; exit 2; }
home=$(printf '%s\n' "$home" | cut -d: -f6)
emit "$1" "$home"`
	}
	script = strings.ReplaceAll(script, "'MARK%s %s\\n'", shellQuote(mark+"%s %s\\n"))
	r, err := c.run(ctx, script, nil)
	if err != nil {
		return nil, err
	}
	if r.exit == 2 && user != "" {
		return nil, sdk.NotFound("account %q on %s", user, c.t)
	}
	if r.exit != 0 {
		return nil, fmt.Errorf("%s: reading authorized_keys failed: %s", c.t, firstLine(strings.TrimSpace(string(r.stderr))))
	}
	out := string(r.stdout)
	var files []keyFile
	for _, chunk := range strings.Split(out, mark)[1:] {
		head, rest, _ := strings.Cut(chunk, "\n")
		u, path, _ := strings.Cut(head, " ")
		info, body, _ := strings.Cut(rest, "\n")
		if why, ok := strings.CutPrefix(info, "REFUSED "); ok {
			return nil, fmt.Errorf("%s: refusing to use %s of %s: %s (fix it by hand; sshd may be reading another user's keys through it)", c.t, path, u, why)
		}
		f := strings.Fields(strings.TrimPrefix(info, "OWNER "))
		if len(f) != 2 {
			return nil, fmt.Errorf("%s: cannot read the owner of %s", c.t, path)
		}
		if f[0] != u && f[0] != "root" {
			return nil, fmt.Errorf("%s: refusing to use %s of %s: it is owned by %s", c.t, path, u, f[0])
		}
		if f[1] != "1" {
			return nil, fmt.Errorf("%s: refusing to use %s of %s: it has %s hard links (one may be another user's file)", c.t, path, u, f[1])
		}
		// Undo the newline printed after cat.
		body = strings.TrimSuffix(body, "\n")
		files = append(files, keyFile{user: u, path: path, content: body})
	}
	return files, nil
}

// keyLine is one line of an authorized_keys file.
type keyLine struct {
	raw     string
	key     ssh.PublicKey // nil: not a key (comment, blank, unparsable)
	comment string
}

func parseKeyLines(content string) []keyLine {
	var out []keyLine
	for _, l := range strings.Split(content, "\n") {
		kl := keyLine{raw: l}
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			if pk, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(t)); err == nil {
				kl.key, kl.comment = pk, comment
			}
		}
		out = append(out, kl)
	}
	return out
}

func describeKey(kl keyLine) string {
	c := kl.comment
	if c == "" {
		c = "(no comment)"
	}
	return fmt.Sprintf("%s (%s %s)", c, kl.key.Type(), ssh.FingerprintSHA256(kl.key))
}

// keyMatcher decides which keys go.
type keyMatcher struct {
	fingerprints map[string]bool
	comment      *regexp.Regexp
	types        map[string]bool
	keepOnly     map[string]bool // marshalled keys to keep; nil when unused
	all          bool
}

func (m *keyMatcher) remove(kl keyLine) bool {
	if kl.key == nil {
		return false
	}
	if m.all {
		return true
	}
	if m.keepOnly != nil {
		return !m.keepOnly[string(kl.key.Marshal())]
	}
	fp := ssh.FingerprintSHA256(kl.key)
	return m.fingerprints[fp] || m.fingerprints[strings.TrimPrefix(fp, "SHA256:")] ||
		(m.comment != nil && m.comment.MatchString(kl.comment)) || m.types[kl.key.Type()]
}

func newMatcher(a sdk.Values) (*keyMatcher, sdk.Diagnostics) {
	m := &keyMatcher{fingerprints: map[string]bool{}, types: map[string]bool{}}
	rm := a.Get("remove")
	hasRemove := !rm.IsNull() && rm.IsKnown()
	if hasRemove {
		r := sdk.NewValues(rm)
		for _, fp := range r.Strings("fingerprints") {
			m.fingerprints[strings.TrimSpace(fp)] = true
		}
		if pat := r.String("comment_matches"); pat != "" {
			re, err := regexp.Compile(pat)
			if err != nil {
				return nil, sdk.AttributeErrorf("remove", "Invalid comment_matches", "%q is not a regular expression: %v", pat, err)
			}
			m.comment = re
		}
		for _, t := range r.Strings("key_types") {
			m.types[t] = true
		}
		if len(m.fingerprints) == 0 && m.comment == nil && len(m.types) == 0 {
			return nil, sdk.AttributeErrorf("remove", "Empty remove", "remove needs fingerprints, comment_matches or key_types")
		}
	}
	if a.Has("keep_only") {
		if hasRemove {
			return nil, sdk.AttributeErrorf("keep_only", "Conflicting attributes", "use remove or keep_only, not both")
		}
		m.keepOnly = map[string]bool{}
		for _, line := range a.Strings("keep_only") {
			pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
			if err != nil {
				return nil, sdk.AttributeErrorf("keep_only", "Invalid public key", "%q is not a public key line: %v", abbreviate(line), err)
			}
			m.keepOnly[string(pk.Marshal())] = true
		}
	}
	if !hasRemove && m.keepOnly == nil {
		return nil, sdk.AttributeErrorf("remove", "Nothing to match", "set remove (fingerprints, comment_matches, key_types) or keep_only")
	}
	return m, nil
}

func nonce() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// keyChange is what will change in one file.
type keyChange struct {
	file       keyFile
	removed    []keyLine
	total      int
	newContent string
}

func computeKeyChanges(files []keyFile, m *keyMatcher) []keyChange {
	var out []keyChange
	for _, f := range files {
		lines := parseKeyLines(f.content)
		ch := keyChange{file: f}
		var kept []string
		for _, kl := range lines {
			if kl.key != nil {
				ch.total++
			}
			if m.remove(kl) {
				ch.removed = append(ch.removed, kl)
				continue
			}
			kept = append(kept, kl.raw)
		}
		if len(ch.removed) > 0 {
			ch.newContent = strings.Join(kept, "\n")
			if !strings.HasSuffix(ch.newContent, "\n") && ch.newContent != "" {
				ch.newContent += "\n"
			}
			out = append(out, ch)
		}
	}
	return out
}

func (ch keyChange) summary() string {
	var ds []string
	for _, kl := range ch.removed {
		ds = append(ds, describeKey(kl))
	}
	return fmt.Sprintf("remove %d of %d keys from %s: %s", len(ch.removed), ch.total, ch.file.path, strings.Join(ds, ", "))
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// replaceFile atomically replaces path with content when it still has the
// SHA-256 expect (compare and swap), keeping its owner and mode. Run as root.
// It is the one way the plugin rewrites a file on a host: the new content
// arrives through run's verified input (complete, or the script never
// runs), is staged next to the file, and only then renamed over it, so a
// connection cut at any byte leaves the old file. The file must be a regular
// file, not a symbolic link, and no directory on its way may be one.
// sudoers: the staged file must pass visudo -c, and so must the whole
// configuration afterwards (else the old file is put back).
func replaceFile(ctx context.Context, c *conn, path, expect, content string, sudoers bool) error {
	script := `set -e
f="$1"; want="$2"
` + noSymlinkPath + `
[ -f "$f" ] && [ ! -L "$f" ] || { echo "$f is not a regular file" >&2; exit 4; }
now=$(sha256sum < "$f" | cut -d' ' -f1)
if [ "$now" != "$want" ]; then echo "` + conflictMark + `$f changed while switchover worked on it" >&2; exit 3; fi
t=$(mktemp "$(dirname "$f")/.switchover.XXXXXX")
trap 'rm -f "$t"' EXIT
cat > "$t"
chown --reference="$f" "$t"
chmod --reference="$f" "$t"
`
	if sudoers {
		script += `visudo -c -q -f "$t" >&2 || { echo "the new $f does not pass visudo -c" >&2; exit 4; }
b=$(mktemp "$(dirname "$f")/.switchover-backup.XXXXXX")
trap 'rm -f "$t" "$b"' EXIT
cp -p "$f" "$b"
mv -f "$t" "$f"
if ! visudo -c -q >&2; then mv -f "$b" "$f"; echo "sudoers does not pass visudo -c with the new $f; restored it" >&2; exit 5; fi
`
	} else {
		script += "mv -f \"$t\" \"$f\"\ntrap - EXIT\n"
	}
	script = "set -- " + shellQuote(path) + " " + shellQuote(expect) + "\n" + script
	_, err := c.runOK(ctx, "replacing "+path, script, []byte(content))
	if err != nil && strings.Contains(err.Error(), conflictMark) {
		return sdk.Conflict("%s: %s changed since it was read (left as it is)", c.t, path)
	}
	return err
}

// noSymlinkPath refuses "$f" when its directory is a symbolic link (a
// planted ~/.ssh -> /root/.ssh must not redirect a write) or the file has
// other hard links. (Directories above it, such as /home, belong to root.)
const noSymlinkPath = `d=$(dirname "$f")
if [ -L "$d" ]; then echo "refusing $f: $d is a symbolic link" >&2; exit 4; fi
if [ "$(stat -c %h "$f")" != 1 ]; then echo "refusing $f: it has other hard links" >&2; exit 4; fi`

// conflictMark starts the error of a compare-and-swap that found the file
// changed since it was read; the plugin reports it as a conflict, which the
// engine answers by planning the step again.
const conflictMark = "switchover-conflict: "

func (p *plugin) authorizedKeys() *sdk.Action {
	removeType := cty.ObjectWithOptionalAttrs(map[string]cty.Type{
		"fingerprints":    cty.List(cty.String),
		"comment_matches": cty.String,
		"key_types":       cty.List(cty.String),
	}, []string{"fingerprints", "comment_matches", "key_types"})
	target := func(a sdk.Values) (string, sdk.Diagnostics) {
		user, all := a.String("user"), a.Bool("all_users")
		switch {
		case user != "" && all:
			return "", sdk.AttributeErrorf("all_users", "Conflicting attributes", "use user or all_users, not both")
		case user == "" && !all:
			return "", sdk.AttributeErrorf("user", "No user", "set user = \"NAME\", or all_users = true for every user with authorized_keys (root too)")
		}
		return user, nil
	}
	plan := func(ctx context.Context, c *conn, a sdk.Values, _ []byte) *sdk.PlanResponse {
		user, d := target(a)
		if d != nil {
			return &sdk.PlanResponse{Diagnostics: d}
		}
		m, d := newMatcher(a)
		if d != nil {
			return &sdk.PlanResponse{Diagnostics: d}
		}
		files, err := listKeyFiles(ctx, c, user)
		if err != nil {
			return sdk.PlanError(err)
		}
		changes := computeKeyChanges(files, m)
		if len(changes) == 0 {
			r := sdk.NoChangef("no matching key in %d authorized_keys file(s) on %s", len(files), c.t)
			r.Outputs = map[string]cty.Value{"removed": cty.ListValEmpty(cty.String)}
			return r
		}
		private := encodeKeyPlan(changes)
		if len(changes) == 1 {
			r := sdk.Changef("%s on %s", changes[0].summary(), c.t)
			r.Private = private
			return r
		}
		n := 0
		var details []string
		for _, ch := range changes {
			n += len(ch.removed)
			details = append(details, ch.summary())
		}
		r := sdk.Changef("remove %d keys from %d authorized_keys files on %s", n, len(changes), c.t)
		r.Details = details
		r.Private = private
		return r
	}
	apply := func(ctx context.Context, c *conn, a sdk.Values, ev sdk.Events, req *sdk.ApplyRequest) *sdk.ApplyResponse {
		user, d := target(a)
		if d != nil {
			return &sdk.ApplyResponse{Diagnostics: d}
		}
		m, d := newMatcher(a)
		if d != nil {
			return &sdk.ApplyResponse{Diagnostics: d}
		}
		// Apply exactly what the plan saw, and only what this step's
		// attributes allow: the plan's data (which a saved plan carries) is
		// checked against the files as they are, so that it can name no
		// other file and no other content. A file that changed since the
		// plan is a conflict (the engine plans again); each file is then
		// replaced only if it still has the content read (compare and swap).
		files, err := listKeyFiles(ctx, c, user)
		if err != nil {
			return sdk.ApplyError(err)
		}
		current := map[string]keyFile{}
		for _, f := range files {
			current[f.path] = f
		}
		fresh := map[string]keyChange{}
		for _, ch := range computeKeyChanges(files, m) {
			fresh[ch.file.path] = ch
		}
		planned, ok := decodeKeyPlan(req.Private)
		if !ok {
			for _, ch := range fresh {
				planned = append(planned, plannedKeyFile{User: ch.file.user, Path: ch.file.path, SHA: sha(ch.file.content), New: ch.newContent, Removed: describeAll(ch)})
			}
			sort.Slice(planned, func(i, j int) bool { return planned[i].Path < planned[j].Path })
		}
		inPlan := map[string]bool{}
		for _, pf := range planned {
			inPlan[pf.Path] = true
			cur, ok := current[pf.Path]
			if !ok || cur.user != pf.User {
				return sdk.ApplyError(fmt.Errorf("%s: the plan names %s, which is not an authorized_keys file of this step's users; refusing (was the plan file edited?)", c.t, pf.Path))
			}
			if sha(cur.content) != pf.SHA {
				return sdk.ApplyError(sdk.Conflict("%s: %s changed since the plan read it (left as it is)", c.t, pf.Path))
			}
			if ch, ok := fresh[pf.Path]; !ok || ch.newContent != pf.New {
				return sdk.ApplyError(fmt.Errorf("%s: the plan's new content of %s is not what this step's attributes remove from it; refusing (was the plan file edited?)", c.t, pf.Path))
			}
		}
		for path := range fresh {
			if !inPlan[path] {
				return sdk.ApplyError(sdk.Conflict("%s: %s has keys to remove that the plan did not see", c.t, path))
			}
		}
		var removed []string
		for _, pf := range planned {
			if err := replaceFile(ctx, c, pf.Path, pf.SHA, pf.New, false); err != nil {
				return sdk.ApplyError(err)
			}
			for _, r := range pf.Removed {
				removed = append(removed, pf.User+": "+r)
			}
			ev.Log(fmt.Sprintf("removed %d keys from %s", len(pf.Removed), pf.Path))
		}
		sort.Strings(removed)
		outs := cty.ListValEmpty(cty.String)
		if len(removed) > 0 {
			var vs []cty.Value
			for _, r := range removed {
				vs = append(vs, cty.StringVal(r))
			}
			outs = cty.ListVal(vs)
		}
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("removed %d keys on %s", len(removed), c.t), Outputs: map[string]cty.Value{"removed": outs}}
	}
	return goneIsDone(p.action("authorized_keys",
		"Removes keys from authorized_keys (matching fingerprints, a comment pattern or key types), or keeps exactly a given set; for one user or every user. Keeps owner, mode and unrelated lines; replaces each file atomically.",
		[]sdk.Attribute{
			{Name: "user", Type: cty.String, Description: "The user whose authorized_keys to change."},
			{Name: "all_users", Type: cty.Bool, Description: "Every user with an authorized_keys file, root too."},
			{Name: "remove", Type: removeType, Description: "Keys to remove: { fingerprints = [\"SHA256:...\"], comment_matches = \"oldmsp\", key_types = [\"ssh-dss\"] } (any match removes)."},
			{Name: "keep_only", Type: cty.List(cty.String), Description: "Public key lines to keep; every other key is removed."},
		},
		[]sdk.Output{{Name: "removed", Type: cty.List(cty.String), Description: "The keys removed: USER: COMMENT (TYPE FINGERPRINT)."}},
		plan, apply))
}

// plannedKeyFile is one file's change as the plan computed it.
type plannedKeyFile struct {
	User    string   `json:"user"`
	Path    string   `json:"path"`
	SHA     string   `json:"sha256"`
	New     string   `json:"new"`
	Removed []string `json:"removed"`
}

func describeAll(ch keyChange) []string {
	var out []string
	for _, kl := range ch.removed {
		out = append(out, describeKey(kl))
	}
	return out
}

func encodeKeyPlan(changes []keyChange) []byte {
	var pf []plannedKeyFile
	for _, ch := range changes {
		pf = append(pf, plannedKeyFile{User: ch.file.user, Path: ch.file.path, SHA: sha(ch.file.content), New: ch.newContent, Removed: describeAll(ch)})
	}
	b, _ := json.Marshal(pf)
	return b
}

func decodeKeyPlan(b []byte) ([]plannedKeyFile, bool) {
	var pf []plannedKeyFile
	if len(b) == 0 || json.Unmarshal(b, &pf) != nil {
		return nil, false
	}
	return pf, true
}
