package engine

import "github.com/agext/levenshtein"

// nearest returns the candidate closest to name, if it is close enough to be
// a likely typo.
func nearest(name string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(name, c, nil); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}
