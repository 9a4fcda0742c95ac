package runbook

import "github.com/agext/levenshtein"

// Nearest returns the candidate closest to name, if it is close enough to be
// a likely typo.
func Nearest(name string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(name, c, nil); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}
