// Command switchover-plugin-motd is an example external plugin, written
// against plugins/sdk alone: it makes sure a text file (such as /etc/motd)
// holds a given line. Build it into a plugin directory:
//
//	go build -o ~/.config/switchover/plugins/switchover-plugin-motd ./examples/plugin-motd
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/rpc"
)

func main() {
	rpc.Serve(New())
}

// New returns the plugin; root is set by Configure.
func New() *sdk.Plugin {
	p := &plugin{}
	return &sdk.Plugin{
		Name:        "motd",
		Version:     "1.0.0",
		Description: "Example plugin: keeps a line in a text file.",
		Config: []sdk.Attribute{
			{Name: "root", Type: cty.String, Description: "Directory that relative file paths are resolved against (default: /)."},
		},
		ConfigureFunc: p.configure,
		Actions: []*sdk.Action{{
			Name:        "line",
			Description: "Ensures that file holds line (appends it when missing).",
			Attributes: []sdk.Attribute{
				{Name: "file", Type: cty.String, Required: true, Description: "The file, relative to root."},
				{Name: "line", Type: cty.String, Required: true, Description: "The line it must hold."},
			},
			Outputs:   []sdk.Output{{Name: "path", Type: cty.String, Description: "The file's full path."}},
			PlanFunc:  p.plan,
			ApplyFunc: p.apply,
		}},
	}
}

type plugin struct{ root string }

func (p *plugin) configure(ctx context.Context, cfg sdk.Values) sdk.Diagnostics {
	p.root = cfg.String("root")
	if p.root == "" {
		p.root = "/"
	}
	if st, err := os.Stat(p.root); err != nil || !st.IsDir() {
		return sdk.AttributeErrorf("root", "Invalid root", "%s is not a directory", p.root)
	}
	return nil
}

func (p *plugin) path(attrs sdk.Values) string {
	return filepath.Join(p.root, filepath.Clean("/"+attrs.String("file")))
}

func hasLine(path, line string) (bool, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l == line {
			return true, nil
		}
	}
	return false, nil
}

func (p *plugin) plan(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
	if !req.Attributes.AllKnown() {
		return sdk.Changef("file or line known only after earlier steps ran")
	}
	path, line := p.path(req.Attributes), req.Attributes.String("line")
	ok, err := hasLine(path, line)
	if err != nil {
		return &sdk.PlanResponse{Diagnostics: sdk.Errorf("cannot read %s: %v", path, err)}
	}
	if ok {
		return sdk.NoChangef("%s already holds the line", path)
	}
	r := sdk.Changef("append 1 line to %s", path)
	r.Details = []string{"+ " + line}
	return r
}

func (p *plugin) apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
	path, line := p.path(req.Attributes), req.Attributes.String("line")
	ok, err := hasLine(path, line)
	if err == nil && !ok {
		var f *os.File
		if f, err = os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, err = fmt.Fprintln(f, line)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	}
	if err != nil {
		return &sdk.ApplyResponse{Diagnostics: sdk.Errorf("cannot update %s: %v", path, err)}
	}
	ev.Log("appended to " + path)
	return &sdk.ApplyResponse{Summary: "appended 1 line to " + path, Outputs: map[string]cty.Value{"path": cty.StringVal(path)}}
}
