package ssh

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/sdktest"
)

func TestSumLineEscapesAsSha256sum(t *testing.T) {
	if got := sumLine("ab", "srv/a\nb\\c"); got != "\\ab  srv/a\\nb\\\\c\n" {
		t.Fatalf("%q", got)
	}
	if got := sumLine("ab", "srv/plain"); got != "ab  srv/plain\n" {
		t.Fatalf("%q", got)
	}
}

// Export's holes from the security review, on a real host: a file swapped
// for a link to /etc/shadow after the walk is refused, other content with
// the same size and time is fetched again, a symlinked directory in the
// destination is not written through.
func TestExportSwapSameSizeAndDestinationLink(t *testing.T) {
	h := lab.Hosts[hostSudo]
	ctx := context.Background()
	h.MustRun(t, "rm -rf /srv/exp && mkdir -p /srv/exp/sub && echo 'public data' > /srv/exp/a.txt && echo 'more' > /srv/exp/sub/b.txt && touch -d '2020-01-01' /srv/exp/a.txt")
	// The swap, between the walk and the open.
	p := &plugin{}
	cfg, _ := sdktest.Object(New("t").Config, map[string]cty.Value{
		"host": cty.StringVal("127.0.0.1"), "port": cty.NumberIntVal(int64(h.Port)),
		"private_key_file": cty.StringVal(lab.AdminKeyFile), "known_hosts": cty.StringVal(lab.KnownHosts),
	})
	if d := p.configure(ctx, sdk.NewValues(cfg)); d.HasErrors() {
		t.Fatal(d.Err())
	}
	c, err := p.pool.get(ctx, target{"127.0.0.1", h.Port})
	if err != nil {
		t.Fatal(err)
	}
	cl, done, err := openSFTP(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	files, _, err := walk(cl, []string{"/srv/exp"})
	if err != nil || len(files) != 2 {
		t.Fatalf("walk: %v %v", files, err)
	}
	h.MustRun(t, "rm /srv/exp/a.txt && ln -s /etc/shadow /srv/exp/a.txt")
	local := filepath.Join(t.TempDir(), "a.txt")
	if _, err := fetch(cl, files[0], local); err == nil || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("fetch of a swapped file: %v", err)
	}
	if _, err := os.Stat(local); err == nil {
		t.Fatal("the swapped file was written locally")
	}
	done()
	h.MustRun(t, "rm /srv/exp/a.txt && echo 'public data' > /srv/exp/a.txt && touch -d '2020-01-01' /srv/exp/a.txt")

	dest := t.TempDir()
	attrs := map[string]cty.Value{"paths": cty.ListVal([]cty.Value{cty.StringVal("/srv/exp")}), "destination": cty.StringVal(dest)}
	if _, err := harness(t, h, 0, nil).Run(ctx, "export", attrs); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(dest, "127.0.0.1_"+strconv.Itoa(h.Port), "srv", "exp", "a.txt")
	// Same size and time, other content: fetched again.
	h.MustRun(t, "echo 'PUBLIC DATA' > /srv/exp/a.txt && touch -d '2020-01-01' /srv/exp/a.txt")
	if _, err := harness(t, h, 0, nil).Run(ctx, "export", attrs); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(got); string(b) != "PUBLIC DATA\n" {
		t.Fatalf("after a same-size change the export holds %q", b)
	}
	// A link planted in the destination is not written through.
	outside := t.TempDir()
	sub := filepath.Join(dest, "127.0.0.1_"+strconv.Itoa(h.Port), "srv", "exp", "sub")
	os.RemoveAll(sub)
	os.Symlink(outside, sub)
	_, err = harness(t, h, 0, nil).Run(ctx, "export", attrs)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("destination link: %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("files written through the link: %v", ents)
	}
}
