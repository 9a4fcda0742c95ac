package rpc

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/switchover/switchover/plugins/sdk"
)

type engineEvents struct{ kept map[string]string }

func (e *engineEvents) Checkpoint(context.Context, []byte) error { return nil }
func (e *engineEvents) Log(string)                               {}
func (e *engineEvents) KeepSecret(_ context.Context, name, value string) error {
	e.kept[name] = value
	return nil
}

// oldEngineEvents is an engine that does not keep secrets.
type oldEngineEvents struct{ checkpoints int }

func (e *oldEngineEvents) Checkpoint(context.Context, []byte) error { e.checkpoints++; return nil }
func (e *oldEngineEvents) Log(string)                               {}

// A secret a target made crosses the wire to an engine that keeps it; an
// engine that does not say it keeps secrets gets nothing (not an empty
// checkpoint), and the plugin's apply fails with why.
func TestKeepSecretAcrossTheWire(t *testing.T) {
	p := &sdk.Plugin{Name: "t", Actions: []*sdk.Action{{
		Name: "make",
		PlanFunc: func(context.Context, *sdk.PlanRequest) *sdk.PlanResponse {
			return sdk.Changef("make a pass")
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			if err := sdk.KeepSecret(ctx, ev, "vendor/tap", "TAP-123456"); err != nil {
				return sdk.ApplyError(err)
			}
			return &sdk.ApplyResponse{Summary: "made"}
		},
	}}}
	l := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	(&GRPCPlugin{Impl: p}).GRPCServer(nil, s)
	go s.Serve(l)
	defer s.Stop()
	conn, err := grpc.NewClient("passthrough:///buf", grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return l.Dial() }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, _ := (&GRPCPlugin{}).GRPCClient(context.Background(), nil, conn)
	client := c.(sdk.Provider)
	req := &sdk.ApplyRequest{Action: "make", Attributes: sdk.NewValues(cty.EmptyObjectVal)}
	ev := &engineEvents{kept: map[string]string{}}
	if r, err := client.Apply(context.Background(), req, ev); err != nil || r.Diagnostics.HasErrors() || ev.kept["vendor/tap"] != "TAP-123456" {
		t.Fatalf("an engine that keeps secrets: %v %+v %v", err, r, ev.kept)
	}
	old := &oldEngineEvents{}
	r, err := client.Apply(context.Background(), req, old)
	if err != nil || !r.Diagnostics.HasErrors() || !strings.Contains(r.Diagnostics.Err().Error(), "cannot keep a secret") || old.checkpoints != 0 {
		t.Fatalf("an engine that does not: %v %+v, %d checkpoints", err, r, old.checkpoints)
	}
}
