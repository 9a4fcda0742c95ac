package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrStepTimeout is the cause of a plugin call cut off by the step's timeout.
var ErrStepTimeout = errors.New("step timeout")

// stepContext bounds a plugin call by the step's timeout. The deadline is
// not handed to gRPC as a deadline: then the plugin's side could cancel the
// stream first, and the error that arrives ("RST_STREAM ... CANCEL") would
// not say why. Instead the engine cancels with ErrStepTimeout as the cause,
// before anything can fail because of it, so the cause is always known.
func stepContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(d, func() { cancel(ErrStepTimeout) })
	return cctx, func() { t.Stop(); cancel(context.Canceled) }
}

// timedOut reports whether cctx (from stepContext) ran out of time.
func timedOut(cctx context.Context) bool {
	return errors.Is(context.Cause(cctx), ErrStepTimeout)
}

// timeoutError wraps err with ErrStepTimeout when the step's timeout caused it.
func timeoutError(cctx context.Context, err error, timeout time.Duration) error {
	if err == nil || !timedOut(cctx) {
		return err
	}
	return fmt.Errorf("%w (the step's timeout is %s): %w", ErrStepTimeout, timeout, err)
}
