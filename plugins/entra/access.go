package entra

import (
	"context"
	"fmt"
	"net/url"

	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/window"
)

// accessTarget is a vendor's Entra ID user, enabled only in its windows
// and disabled, with its sign-in sessions revoked, at their ends. Entra
// has no account expiry: the window closes when apply runs at its end.
type accessTarget struct {
	g *graph
	u *user
}

func (p *plugin) accessWindow() *sdk.Action {
	return window.Action("access_window", "an Entra ID user (enabled in the window; disabled and its sign-in sessions revoked at its end)",
		[]sdk.Attribute{userAttr},
		func(ctx context.Context, a sdk.Values) (window.Target, error) {
			g, u, err := p.userOf(ctx, a)
			if err != nil {
				return nil, err
			}
			if u.synced() {
				return nil, fmt.Errorf("%s is synchronized from on-premises AD: open its window on its AD account (ad.access_window)", u.UserPrincipalName)
			}
			return &accessTarget{g: g, u: u}, nil
		})
}

func (t *accessTarget) Describe() string { return "Entra user " + t.u.UserPrincipalName }

func (t *accessTarget) Unenforced() string {
	return "Entra ID has no account expiry: " + t.u.UserPrincipalName + " stays enabled until apply runs at the window's end. Run apply from a timer at the end (systemd timer, cron, a scheduled task), and supervise the session."
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

func (t *accessTarget) Open(ctx context.Context, w window.Window) error {
	return t.setEnabled(ctx, true)
}

// Close disables the user, then revokes its sessions and refresh tokens:
// a token issued in the window stops working at its next refresh.
func (t *accessTarget) Close(ctx context.Context) (string, error) {
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
