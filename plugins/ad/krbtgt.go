package ad

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

// krbtgtCheckpoint is the rotation's progress. Intent is written before
// each reset, so a crash between the reset and its record is recognised
// by the key version (and never answered with a second reset at once,
// which would cut every Kerberos ticket in the domain).
type krbtgtCheckpoint struct {
	StartKVNO int       `json:"start_kvno"`
	Intent    int       `json:"intent,omitempty"` // the reset (1 or 2) about to be made
	FirstKVNO int       `json:"first_kvno,omitempty"`
	FirstAt   time.Time `json:"first_at,omitempty"`
	SecondAt  time.Time `json:"second_at,omitempty"`
	EndKVNO   int       `json:"end_kvno,omitempty"`
}

// settle turns an intent into a fact when the key version shows the reset
// happened (the crash came after it). When it happened is the DC's own
// record of it, krbtgt's pwdLastSet: never the time of this look, which
// would move the second reset's due time forward on every plan.
func (ck *krbtgtCheckpoint) settle(kvno int, pwdLastSet time.Time) {
	switch {
	case ck.Intent == 1 && ck.FirstAt.IsZero() && kvno > ck.StartKVNO:
		ck.FirstKVNO, ck.FirstAt, ck.Intent = kvno, pwdLastSet.UTC(), 0
	case ck.Intent == 2 && ck.SecondAt.IsZero() && kvno > ck.FirstKVNO:
		ck.EndKVNO, ck.SecondAt, ck.Intent = kvno, pwdLastSet.UTC(), 0
	}
}

func randomPassword() string {
	const chars = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%+-=?@_"
	b := make([]byte, 64)
	for i := range b {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(chars))))
		b[i] = chars[n.Int64()]
	}
	// Every character class, for the complexity rule.
	return "Aa1!" + string(b)
}

func (p *plugin) rotateKrbtgt() *sdk.Action {
	read := func(c *ldap.Conn, d *directory, a sdk.Values) (*account, time.Duration, error) {
		name := a.String("account")
		if name == "" {
			name = "krbtgt"
		}
		acc, err := findAccount(c, d.info, name)
		if err != nil {
			return nil, 0, err
		}
		if ridOf(acc.SID) != 502 && !(len(acc.Sam) > 7 && acc.Sam[:7] == "krbtgt_") {
			return nil, 0, fmt.Errorf("%s is not a krbtgt account", acc.name())
		}
		wait, d2 := a.Duration("wait", 10*time.Hour)
		if err := d2.Err(); err != nil {
			return nil, 0, err
		}
		return acc, wait, nil
	}
	outputs := func(ck krbtgtCheckpoint) map[string]cty.Value {
		at := func(t time.Time) cty.Value { return cty.StringVal(rfc3339(t)) }
		return map[string]cty.Value{"first_reset": at(ck.FirstAt), "second_reset": at(ck.SecondAt), "key_version": cty.NumberIntVal(int64(ck.EndKVNO))}
	}
	plan := func(ctx context.Context, d *directory, c *ldap.Conn, req *sdk.PlanRequest) *sdk.PlanResponse {
		acc, wait, err := read(c, d, req.Attributes)
		if err != nil {
			return sdk.PlanError(err)
		}
		var ck krbtgtCheckpoint
		if len(req.Checkpoint) > 0 {
			if err := json.Unmarshal(req.Checkpoint, &ck); err != nil {
				return sdk.PlanError(fmt.Errorf("the rotation's checkpoint is unreadable: %v", err))
			}
			ck.settle(acc.KVNO, acc.PwdLastSet)
		}
		switch {
		case !ck.SecondAt.IsZero():
			if acc.KVNO < ck.EndKVNO {
				return sdk.PlanError(fmt.Errorf("%s has key version %d, lower than the %d the second reset left: the domain was restored from a backup?", acc.name(), acc.KVNO, ck.EndKVNO))
			}
			r := sdk.NoChangef("%s was reset twice: key version %d -> %d, the second reset at %s", acc.name(), ck.StartKVNO, ck.EndKVNO, ck.SecondAt.UTC().Format(time.RFC3339))
			r.Outputs = outputs(ck)
			return r
		case !ck.FirstAt.IsZero():
			due := ck.FirstAt.Add(wait)
			if time.Now().Before(due) {
				return sdk.Waitf(due, "second reset of %s due at %s (the first was at %s, key version %d -> %d; waiting %s, the maximum ticket lifetime)",
					acc.name(), due.UTC().Format(time.RFC3339), ck.FirstAt.UTC().Format(time.RFC3339), ck.StartKVNO, ck.FirstKVNO, wait)
			}
			return sdk.Changef("reset %s the second time (the first was at %s)", acc.name(), ck.FirstAt.UTC().Format(time.RFC3339))
		}
		r := sdk.Changef("reset %s twice, %s apart (key version %d now)", acc.name(), wait, acc.KVNO)
		r.Details = []string{acc.DN, "first reset now; the second once every ticket issued before the first has expired"}
		return r
	}
	apply := func(ctx context.Context, d *directory, c *ldap.Conn, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		acc, wait, err := read(c, d, req.Attributes)
		if err != nil {
			return sdk.ApplyError(err)
		}
		var ck krbtgtCheckpoint
		if len(req.Checkpoint) > 0 {
			if err := json.Unmarshal(req.Checkpoint, &ck); err != nil {
				return sdk.ApplyError(fmt.Errorf("the rotation's checkpoint is unreadable: %v", err))
			}
			ck.settle(acc.KVNO, acc.PwdLastSet)
		}
		save := func() error {
			b, _ := json.Marshal(ck)
			return ev.Checkpoint(ctx, b)
		}
		// reset resets krbtgt once: the key version it left, and when the
		// DC says it was done (pwdLastSet).
		reset := func(n int) (int, time.Time, error) {
			ck.Intent = n
			if err := save(); err != nil {
				return 0, time.Time{}, err
			}
			if err := setPassword(c, acc.DN, acc.name(), randomPassword()); err != nil {
				return 0, time.Time{}, err
			}
			after, err := reread(c, d.info, acc)
			if err != nil {
				return 0, time.Time{}, err
			}
			if after.KVNO <= acc.KVNO {
				return 0, time.Time{}, fmt.Errorf("the key version of %s did not go up (%d): the reset did not take effect", acc.name(), after.KVNO)
			}
			ck.Intent = 0
			return after.KVNO, after.PwdLastSet.UTC(), nil
		}
		switch {
		case ck.FirstAt.IsZero():
			ck = krbtgtCheckpoint{StartKVNO: acc.KVNO}
			kvno, at, err := reset(1)
			if err != nil {
				return sdk.ApplyError(err)
			}
			ck.FirstKVNO, ck.FirstAt = kvno, at
			if err := save(); err != nil {
				return sdk.ApplyError(err)
			}
			return &sdk.ApplyResponse{Summary: fmt.Sprintf("reset %s the first time (key version %d); the second is due at %s", acc.name(), kvno, ck.FirstAt.Add(wait).Format(time.RFC3339))}
		case ck.SecondAt.IsZero():
			if due := ck.FirstAt.Add(wait); time.Now().Before(due) {
				return sdk.ApplyError(fmt.Errorf("the second reset of %s is not due before %s", acc.name(), due.Format(time.RFC3339)))
			}
			kvno, at, err := reset(2)
			if err != nil {
				return sdk.ApplyError(err)
			}
			ck.EndKVNO, ck.SecondAt = kvno, at
			if err := save(); err != nil {
				return sdk.ApplyError(err)
			}
		}
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("reset %s twice: key version %d -> %d", acc.name(), ck.StartKVNO, ck.EndKVNO), Outputs: outputs(ck)}
	}
	return p.action("rotate_krbtgt",
		"Resets the krbtgt password twice, `wait` apart (default 10h, the maximum ticket lifetime), so that no ticket forged with a key the old provider could have read stays valid. The step waits between the resets across apply runs; `status` shows when the second is due. Verified by msDS-KeyVersionNumber.",
		[]sdk.Attribute{
			{Name: "account", Type: cty.String, Description: "The krbtgt account (default krbtgt; an RODC's is krbtgt_NNNNN)."},
			{Name: "wait", Type: sdk.DurationType, Description: "Time between the two resets (default 10h)."},
		},
		[]sdk.Output{
			{Name: "first_reset", Type: cty.String}, {Name: "second_reset", Type: cty.String},
			{Name: "key_version", Type: cty.Number, Description: "msDS-KeyVersionNumber after the second reset."},
		},
		plan, apply)
}
