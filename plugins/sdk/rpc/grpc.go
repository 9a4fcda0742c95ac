package rpc

import (
	"context"
	"errors"
	"fmt"
	"github.com/switchover/switchover/plugins/sdk"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/zclconf/go-cty/cty"
	"google.golang.org/grpc"

	pb "github.com/switchover/switchover/plugins/protocol/v1"
)

// Handshake is the go-plugin handshake shared by switchover and its plugins.
// A binary started by anything else refuses to run as a plugin.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  sdk.ProtocolVersion,
	MagicCookieKey:   "SWITCHOVER_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "c0b1f1a5e7d84e1f9a0d2b6c4e8f3a17",
}

// PluginSetName is the name under which the plugin is dispensed.
const PluginSetName = "switchover"

// GRPCPlugin adapts a sdk.Provider to go-plugin. Impl is set on the serving side.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl sdk.Provider
}

// GRPCServer implements plugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterPluginServer(s, &grpcServer{impl: p.Impl})
	return nil
}

// GRPCClient implements plugin.GRPCPlugin; it returns a sdk.Provider.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &GRPCClient{client: pb.NewPluginClient(c)}, nil
}

// --- serving side ---

type grpcServer struct {
	pb.UnimplementedPluginServer
	impl sdk.Provider
}

func (s *grpcServer) GetSchema(ctx context.Context, _ *pb.GetSchemaRequest) (*pb.GetSchemaResponse, error) {
	sc, err := s.impl.Schema(ctx)
	if err != nil {
		return nil, err
	}
	return encodeSchema(sc), nil
}

func (s *grpcServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	v, err := decodeValue(req.Config)
	if err != nil {
		return nil, err
	}
	diags, err := s.impl.Configure(ctx, v)
	if err != nil {
		return nil, err
	}
	return &pb.ConfigureResponse{Diagnostics: encodeDiags(diags)}, nil
}

func (s *grpcServer) Plan(ctx context.Context, req *pb.PlanRequest) (*pb.PlanResponse, error) {
	v, err := decodeValue(req.Attributes)
	if err != nil {
		return nil, err
	}
	r, err := s.impl.Plan(ctx, &sdk.PlanRequest{Action: req.Action, Address: req.Address, Attributes: sdk.NewValues(v), Checkpoint: req.Checkpoint})
	if err != nil {
		return nil, err
	}
	return encodePlan(r)
}

func encodePlan(r *sdk.PlanResponse) (*pb.PlanResponse, error) {
	outs, err := encodeOutputs(r.Outputs)
	if err != nil {
		return nil, fmt.Errorf("encoding outputs: %w", err)
	}
	return &pb.PlanResponse{Action: planKinds[r.Kind], Summary: r.Summary, Details: r.Details, Private: r.Private, Diagnostics: encodeDiags(r.Diagnostics), Outputs: outs, NotBeforeUnixNano: unixNano(r.NotBefore), Target: r.Target, TargetSensitive: r.TargetSensitive}, nil
}

func (s *grpcServer) Apply(stream pb.Plugin_ApplyServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	req := first.GetRequest()
	if req == nil {
		return errors.New("protocol error: Apply stream must start with a request")
	}
	attrs, err := decodeValue(req.Attributes)
	if err != nil {
		return err
	}
	ev := &serverEvents{stream: stream, acks: make(chan *pb.CheckpointAck, 1), keepsSecrets: req.KeepsSecrets}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			m, err := stream.Recv()
			if err != nil {
				cancel()
				return
			}
			if ack := m.GetAck(); ack != nil {
				ev.acks <- ack
			}
		}
	}()
	resp, err := s.impl.Apply(ctx, &sdk.ApplyRequest{Action: req.Action, Address: req.Address, Attributes: sdk.NewValues(attrs), Private: req.Private, Checkpoint: req.Checkpoint}, ev)
	if err != nil {
		return err
	}
	outs, err := encodeOutputs(resp.Outputs)
	if err != nil {
		return fmt.Errorf("encoding outputs: %w", err)
	}
	result := &pb.ApplyResult{Summary: resp.Summary, Outputs: outs, Diagnostics: encodeDiags(resp.Diagnostics), VerifyReads: uint32(resp.VerifyReads)}
	if resp.Verify != nil {
		if result.Verify, err = encodePlan(resp.Verify); err != nil {
			return err
		}
	}
	return ev.send(&pb.ApplyServerMessage{Msg: &pb.ApplyServerMessage_Result{Result: result}})
}

// keepsSecrets: the engine's events store kept secrets.
func keepsSecrets(ev sdk.Events) bool {
	_, ok := ev.(sdk.SecretKeeper)
	return ok
}

type serverEvents struct {
	mu           sync.Mutex
	stream       pb.Plugin_ApplyServer
	seq          uint64
	acks         chan *pb.CheckpointAck
	keepsSecrets bool // the engine said it stores kept secrets
}

func (e *serverEvents) send(m *pb.ApplyServerMessage) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stream.Send(m)
}

func (e *serverEvents) Checkpoint(ctx context.Context, data []byte) error {
	return e.acked(ctx, &pb.Checkpoint{Data: data})
}

// KeepSecret sends the secret as a checkpoint that carries it, and
// returns once switchover has stored it.
func (e *serverEvents) KeepSecret(ctx context.Context, name, value string) error {
	if name == "" {
		return errors.New("a kept secret needs a name")
	}
	if !e.keepsSecrets {
		return fmt.Errorf("this switchover cannot keep a secret a target made (%s): update it (nothing was sent)", name)
	}
	return e.acked(ctx, &pb.Checkpoint{SecretName: name, SecretValue: []byte(value)})
}

func (e *serverEvents) acked(ctx context.Context, cp *pb.Checkpoint) error {
	e.mu.Lock()
	e.seq++
	seq := e.seq
	cp.Seq = seq
	err := e.stream.Send(&pb.ApplyServerMessage{Msg: &pb.ApplyServerMessage_Checkpoint{Checkpoint: cp}})
	e.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case ack := <-e.acks:
		if ack.Seq != seq {
			return fmt.Errorf("protocol error: checkpoint %d acknowledged as %d", seq, ack.Seq)
		}
		if ack.Error != "" {
			return fmt.Errorf("checkpoint not recorded: %s", ack.Error)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *serverEvents) Log(msg string) {
	_ = e.send(&pb.ApplyServerMessage{Msg: &pb.ApplyServerMessage_Log{Log: &pb.LogLine{Message: msg}}})
}

// --- client side ---

// GRPCClient is a sdk.Provider backed by a plugin in another process.
type GRPCClient struct {
	client pb.PluginClient
}

var _ sdk.Provider = (*GRPCClient)(nil)

// Schema implements sdk.Provider.
func (c *GRPCClient) Schema(ctx context.Context) (*sdk.Schema, error) {
	r, err := c.client.GetSchema(ctx, &pb.GetSchemaRequest{})
	if err != nil {
		return nil, err
	}
	return decodeSchema(r)
}

// Configure implements sdk.Provider.
func (c *GRPCClient) Configure(ctx context.Context, config cty.Value) (sdk.Diagnostics, error) {
	dv, err := encodeValue(config)
	if err != nil {
		return nil, err
	}
	r, err := c.client.Configure(ctx, &pb.ConfigureRequest{Config: dv})
	if err != nil {
		return nil, err
	}
	return decodeDiags(r.Diagnostics), nil
}

// Plan implements sdk.Provider.
func (c *GRPCClient) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResponse, error) {
	dv, err := encodeValue(req.Attributes.Raw())
	if err != nil {
		return nil, err
	}
	r, err := c.client.Plan(ctx, &pb.PlanRequest{Action: req.Action, Address: req.Address, Attributes: dv, Checkpoint: req.Checkpoint})
	if err != nil {
		return nil, err
	}
	return decodePlan(r)
}

func decodePlan(r *pb.PlanResponse) (*sdk.PlanResponse, error) {
	outs, err := decodeOutputs(r.Outputs)
	if err != nil {
		return nil, err
	}
	resp := &sdk.PlanResponse{Summary: r.Summary, Details: r.Details, Private: r.Private, Diagnostics: decodeDiags(r.Diagnostics), Outputs: outs}
	resp.Target, resp.TargetSensitive = r.Target, r.TargetSensitive
	if r.NotBeforeUnixNano != 0 {
		resp.NotBefore = time.Unix(0, r.NotBeforeUnixNano)
	}
	for k, v := range planKinds {
		if v == r.Action {
			resp.Kind = k
		}
	}
	if resp.Kind == 0 && !resp.Diagnostics.HasErrors() {
		return nil, fmt.Errorf("protocol error: plan answered with unknown kind %v", r.Action)
	}
	return resp, nil
}

// Apply implements sdk.Provider.
func (c *GRPCClient) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.ApplyResponse, error) {
	dv, err := encodeValue(req.Attributes.Raw())
	if err != nil {
		return nil, err
	}
	stream, err := c.client.Apply(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pb.ApplyClientMessage{Msg: &pb.ApplyClientMessage_Request{Request: &pb.ApplyRequest{
		Action: req.Action, Address: req.Address, Attributes: dv, Private: req.Private, Checkpoint: req.Checkpoint,
		KeepsSecrets: keepsSecrets(ev),
	}}}); err != nil {
		return nil, err
	}
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return nil, errors.New("protocol error: plugin closed the apply stream without a result")
		}
		if err != nil {
			return nil, err
		}
		switch msg := m.Msg.(type) {
		case *pb.ApplyServerMessage_Log:
			ev.Log(msg.Log.Message)
		case *pb.ApplyServerMessage_Checkpoint:
			ack := &pb.CheckpointAck{Seq: msg.Checkpoint.Seq}
			var err error
			if cp := msg.Checkpoint; cp.SecretName != "" {
				err = sdk.KeepSecret(ctx, ev, cp.SecretName, string(cp.SecretValue))
			} else {
				err = ev.Checkpoint(ctx, cp.Data)
			}
			if err != nil {
				ack.Error = err.Error()
			}
			if err := stream.Send(&pb.ApplyClientMessage{Msg: &pb.ApplyClientMessage_Ack{Ack: ack}}); err != nil {
				return nil, err
			}
		case *pb.ApplyServerMessage_Result:
			outs, err := decodeOutputs(msg.Result.Outputs)
			if err != nil {
				return nil, err
			}
			_ = stream.CloseSend()
			resp := &sdk.ApplyResponse{Summary: msg.Result.Summary, Outputs: outs, Diagnostics: decodeDiags(msg.Result.Diagnostics), VerifyReads: int(msg.Result.VerifyReads)}
			if msg.Result.Verify != nil {
				if resp.Verify, err = decodePlan(msg.Result.Verify); err != nil {
					return nil, err
				}
			}
			return resp, nil
		}
	}
}
