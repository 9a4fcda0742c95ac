package engine

import (
	"encoding/json"
	"fmt"
	"sort"

	"filippo.io/age"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/switchover/switchover/internal/lang"
	"github.com/switchover/switchover/internal/secrets"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/plugins/sdk"
)

// Run is what plan and apply need of the workspace: the state, and the keys
// that seal and unseal what must not be stored in clear.
type Run struct {
	State      *state.Manager
	Identity   *age.X25519Identity // decrypts; nil: sealed data cannot be read
	Recipients []age.Recipient     // encrypt to these (the identity's own recipient included)
	Redactor   *Redactor
	// OnSecret is told the name of every secret created (for the audit
	// trail); its error stops the step before the secret is used.
	OnSecret func(name, address string) error
}

// Instance returns the recorded state of an instance, or nil.
func (r *Run) Instance(addr string) *state.Instance {
	if r == nil || r.State == nil {
		return nil
	}
	return r.State.Instance(addr)
}

// Checkpoint returns an instance's last checkpoint, unsealed.
func (r *Run) Checkpoint(addr string) ([]byte, error) {
	if r == nil {
		return nil, nil
	}
	in := r.Instance(addr)
	if in == nil || in.Checkpoint == nil {
		return nil, nil
	}
	if !in.Sealed {
		return in.Checkpoint, nil
	}
	if r.Identity == nil {
		return nil, fmt.Errorf("the checkpoint of %s is encrypted and the workspace identity is not available", addr)
	}
	return secrets.Decrypt(in.Checkpoint, r.Identity)
}

// seal encrypts data when it holds a known secret, so that no secret is
// stored in clear; it reports whether it did.
func (r *Run) seal(data []byte) ([]byte, bool, error) {
	if r.Redactor == nil || r.Redactor.String(string(data)) == string(data) {
		return data, false, nil
	}
	ct, err := secrets.Encrypt(data, r.Recipients...)
	return ct, true, err
}

// encodeOutputs splits outputs into clear JSON and sealed JSON (the
// sensitive ones, encrypted).
func (r *Run) encodeOutputs(outs map[string]cty.Value, sensitive map[string]bool) (clear json.RawMessage, sealed []byte, err error) {
	plain := map[string]cty.Value{}
	secret := map[string]cty.Value{}
	for k, v := range outs {
		v, marks := v.UnmarkDeep()
		// A null reveals nothing: only real values are sealed (sealing costs
		// an X25519 operation per record).
		if (sensitive[k] || len(marks) > 0) && !v.IsNull() {
			secret[k] = v
		} else {
			plain[k] = v
		}
	}
	if len(plain) > 0 {
		if clear, err = ctyjson.Marshal(cty.ObjectVal(plain), cty.DynamicPseudoType); err != nil {
			return nil, nil, err
		}
		// A plugin may echo a secret in an output it did not declare sensitive.
		if _, was, err := r.seal(clear); err != nil {
			return nil, nil, err
		} else if was {
			for k, v := range plain {
				secret[k] = v
			}
			clear = nil
		}
	}
	if len(secret) > 0 {
		b, err := ctyjson.Marshal(cty.ObjectVal(secret), cty.DynamicPseudoType)
		if err != nil {
			return nil, nil, err
		}
		if sealed, err = secrets.Encrypt(b, r.Recipients...); err != nil {
			return nil, nil, err
		}
	}
	return clear, sealed, nil
}

// Outputs returns a finished instance's recorded outputs (sensitive ones
// marked), of the types schema declares (a declared one that was not
// recorded is a null of its type), or false when it has none recorded.
func (r *Run) Outputs(addr string, schema []sdk.Output) (cty.Value, bool) {
	in := r.Instance(addr)
	if in == nil || in.Status != state.Done {
		return cty.NilVal, false
	}
	m := map[string]cty.Value{}
	if len(in.Outputs) > 0 {
		v, err := ctyjson.Unmarshal(in.Outputs, cty.DynamicPseudoType)
		if err == nil && v.Type().IsObjectType() {
			for k, x := range v.AsValueMap() {
				m[k] = x
			}
		}
	}
	if len(in.SealedOutputs) > 0 && r.Identity != nil {
		if b, err := secrets.Decrypt(in.SealedOutputs, r.Identity); err == nil {
			if v, err := ctyjson.Unmarshal(b, cty.DynamicPseudoType); err == nil && v.Type().IsObjectType() {
				for k, x := range v.AsValueMap() {
					m[k] = x.Mark(lang.SensitiveMark)
					r.Redactor.AddValue(m[k])
				}
			}
		}
	}
	for _, o := range schema {
		v, ok := m[o.Name]
		if !ok {
			m[o.Name] = cty.NullVal(o.Type)
			continue
		}
		if c, err := convert.Convert(v, o.Type); err == nil {
			m[o.Name] = c // recorded by an older switchover, or untyped
		}
	}
	return cty.ObjectVal(m), true
}

// typedOutputs are a plugin's outputs as the action declares them: a map
// stays a map (not an object), a number a number, whatever the plugin
// built; what does not convert stays as it came (the SDK refuses it).
func typedOutputs(as *sdk.ActionSchema, outs map[string]cty.Value) map[string]cty.Value {
	if outs == nil {
		return nil
	}
	typed := make(map[string]cty.Value, len(outs))
	for name, v := range outs {
		typed[name] = v
	}
	for _, o := range as.Outputs {
		if v, ok := outs[o.Name]; ok {
			if c, err := convert.Convert(v, o.Type); err == nil {
				typed[o.Name] = c
			}
		}
	}
	return typed
}

// SecretResolver returns the secret() resolver for one instance. With
// generate, a secret without a pending value is generated, encrypted and
// made durable before it is returned; without, it is unknown.
//
// The rules: a pending value (being set by a step, not verified yet) is
// always the answer, so a resumed or retried step sets the same value it may
// already have set; else a current value is the answer (a done step that
// drifted sets the stored value again, and its plan checks that value);
// only a secret never made before gets a new value. A runbook that wants a
// new password asks for it under a new name.
func (r *Run) SecretResolver(addr string, generate bool) lang.SecretResolver {
	return func(name string, opts secrets.Options) (cty.Value, error) {
		var sec *state.Secret
		if r != nil && r.State != nil {
			r.State.View(func(s *state.Snapshot) {
				if x := s.Secrets[name]; x != nil {
					c := *x
					sec = &c
				}
			})
		}
		var use *state.SecretVersion
		switch {
		case sec != nil && sec.Pending != nil:
			use = sec.Pending
		case sec != nil && sec.Current != nil:
			use = sec.Current
		}
		if use != nil {
			if r.Identity == nil {
				return cty.NilVal, fmt.Errorf("secret %q is stored encrypted and the workspace identity is not available", name)
			}
			pt, err := secrets.Decrypt(use.Ciphertext, r.Identity)
			if err != nil {
				return cty.NilVal, fmt.Errorf("cannot decrypt secret %q: %v", name, err)
			}
			r.Redactor.Add(string(pt))
			return cty.StringVal(string(pt)), nil
		}
		if !generate || r == nil || r.State == nil {
			return cty.UnknownVal(cty.String), nil
		}
		pw, err := secrets.Generate(opts)
		if err != nil {
			return cty.NilVal, err
		}
		r.Redactor.Add(pw)
		ct, err := secrets.Encrypt([]byte(pw), r.Recipients...)
		if err != nil {
			return cty.NilVal, fmt.Errorf("encrypting secret %q: %v", name, err)
		}
		// Write-ahead: durable before any plugin can receive it.
		if err := r.State.Append(&state.Record{Kind: state.KindSecret, Name: name, Address: addr, Ciphertext: ct}); err != nil {
			return cty.NilVal, fmt.Errorf("recording secret %q: %v", name, err)
		}
		if r.OnSecret != nil {
			if err := r.OnSecret(name, addr); err != nil {
				return cty.NilVal, fmt.Errorf("recording secret %q in the audit trail: %v", name, err)
			}
		}
		return cty.StringVal(pw), nil
	}
}

// keepSecret records a secret a target made: redacted from now on, sealed,
// and current at once (the target made it; there is nothing to verify).
func (r *Run) keepSecret(name, addr, value string) error {
	if r == nil || r.State == nil {
		return fmt.Errorf("no workspace to keep secret %q in", name)
	}
	r.Redactor.Add(value)
	ct, err := secrets.Encrypt([]byte(value), r.Recipients...)
	if err != nil {
		return fmt.Errorf("encrypting secret %q: %v", name, err)
	}
	for _, rec := range []*state.Record{
		{Kind: state.KindSecret, Name: name, Address: addr, Ciphertext: ct},
		{Kind: state.KindSecret, Name: name, Address: addr, Verified: true},
	} {
		if err := r.State.Append(rec); err != nil {
			return fmt.Errorf("recording secret %q: %v", name, err)
		}
	}
	if r.OnSecret != nil {
		return r.OnSecret(name, addr)
	}
	return nil
}

// pendingSecretsOf lists the secrets an instance is setting.
func (r *Run) pendingSecretsOf(addr string) []string {
	var out []string
	r.State.View(func(s *state.Snapshot) {
		for name, sec := range s.Secrets {
			if sec.Pending != nil && sec.Pending.SetBy == addr {
				out = append(out, name)
			}
		}
	})
	sort.Strings(out)
	return out
}
