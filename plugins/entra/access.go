package entra

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/window"
)

// accessTarget is a vendor's Entra ID user, enabled only in its windows
// and disabled, with its sign-in sessions revoked, at their ends. Entra
// has no account expiry: the window closes when apply runs at its end.
type accessTarget struct {
	g   *graph
	u   *user
	tap string // the secret name to keep a Temporary Access Pass under ("" none)
}

func (p *plugin) accessWindow() *sdk.Action {
	return window.Action("access_window", "an Entra ID user (enabled in the window; disabled and its sign-in sessions revoked at its end)",
		[]sdk.Attribute{userAttr, {Name: "temporary_access_pass", Type: cty.String, Description: "Where the vendor signs in with a Temporary Access Pass: the secret name to keep it under (it goes to the handover bundle). Made at each opening for the window's lifetime (Entra ends it by itself; at least 10 minutes), removed at the end."}},
		func(ctx context.Context, a sdk.Values) (window.Target, error) {
			g, u, err := p.userOf(ctx, a)
			if err != nil {
				return nil, err
			}
			if u.synced() {
				return nil, fmt.Errorf("%s is synchronized from on-premises AD: open its window on its AD account (ad.access_window)", u.UserPrincipalName)
			}
			return &accessTarget{g: g, u: u, tap: a.String("temporary_access_pass")}, nil
		})
}

func (t *accessTarget) Describe() string { return "Entra user " + t.u.UserPrincipalName }

func (t *accessTarget) Unenforced() string {
	s := "Entra ID has no account expiry: " + t.u.UserPrincipalName + " stays enabled until apply runs at the window's end."
	if t.tap != "" {
		s += " Its Temporary Access Pass ends with the window by itself (at least 10 minutes), but a password or a session it got stays."
	}
	return s + " Run apply from a timer at the end (systemd timer, cron, a scheduled task), and supervise the session."
}

func (t *accessTarget) State(ctx context.Context) (window.Access, error) {
	u, err := t.g.mustUser(ctx, t.u.ID)
	if err != nil {
		return window.Access{}, err
	}
	return window.Access{Open: u.enabled()}, nil
}

func (t *accessTarget) setEnabled(ctx context.Context, on bool) error {
	return t.g.do(ctx, "PATCH", "/users/"+url.PathEscape(t.u.ID), nil, map[string]any{"accountEnabled": on}, nil)
}

// Open makes the window's Temporary Access Pass (if the vendor signs in
// with one), keeps it, and enables the user.
func (t *accessTarget) Open(ctx context.Context, w window.Window, ev sdk.Events) error {
	if t.tap != "" {
		if err := t.removeTAPs(ctx); err != nil {
			return err
		}
		start := w.Start
		if now := time.Now(); start.Before(now) {
			start = now
		}
		minutes := int(math.Ceil(w.End.Sub(start).Minutes()))
		minutes = max(10, min(minutes, 43200))
		var made struct {
			TemporaryAccessPass string `json:"temporaryAccessPass"`
		}
		body := map[string]any{"startDateTime": start.UTC().Format(time.RFC3339), "lifetimeInMinutes": minutes, "isUsableOnce": false}
		if err := t.g.do(ctx, "POST", t.tapPath(), nil, body, &made); err != nil {
			return fmt.Errorf("making a Temporary Access Pass: %w", err)
		}
		if made.TemporaryAccessPass == "" {
			return fmt.Errorf("graph made a Temporary Access Pass for %s but did not return it", t.u.UserPrincipalName)
		}
		if err := sdk.KeepSecret(ctx, ev, t.tap, made.TemporaryAccessPass); err != nil {
			return err
		}
	}
	return t.setEnabled(ctx, true)
}

func (t *accessTarget) tapPath() string {
	return "/users/" + url.PathEscape(t.u.ID) + "/authentication/temporaryAccessPassMethods"
}

// removeTAPs deletes the user's Temporary Access Passes.
func (t *accessTarget) removeTAPs(ctx context.Context) error {
	raws, err := t.g.all(ctx, t.tapPath(), nil)
	if err != nil {
		return err
	}
	for _, r := range raws {
		var m struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(r, &m) == nil && m.ID != "" {
			if err := t.g.do(ctx, "DELETE", t.tapPath()+"/"+url.PathEscape(m.ID), nil, nil, nil); err != nil && statusOf(err) != http.StatusNotFound {
				return err
			}
		}
	}
	return nil
}

// Close disables the user, then revokes its sessions and refresh tokens:
// a token issued in the window stops working at its next refresh.
func (t *accessTarget) Close(ctx context.Context) (string, error) {
	if t.tap != "" {
		if err := t.removeTAPs(ctx); err != nil {
			return "", err
		}
	}
	if err := t.setEnabled(ctx, false); err != nil {
		return "", err
	}
	if err := t.g.do(ctx, "POST", "/users/"+url.PathEscape(t.u.ID)+"/revokeSignInSessions", nil, nil, nil); err != nil {
		return "", err
	}
	return "", nil
}

// AdminRights: a directory role.
func (t *accessTarget) AdminRights(ctx context.Context) (string, error) {
	roles, err := t.g.roles(ctx)
	if err != nil {
		return "", err
	}
	for _, r := range roles {
		for _, m := range r.Members {
			if m.ID == t.u.ID {
				return "directory role " + r.DisplayName, nil
			}
		}
	}
	return "", nil
}
