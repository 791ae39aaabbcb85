// gowork: a CPU-bound Go program with a known profile, for the Go symbolization tests. It burns CPU in
// main.leaf under main.middle, through main.mix (small enough to be inlined into main.middle), for the
// number of seconds given as its argument (default 10), then prints a checksum so nothing is elided.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

//go:noinline
func leaf(n int) uint64 {
	x := uint64(n)
	for i := 0; i < 20000; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

func mix(x uint64) uint64 {
	return x ^ x>>29
}

//go:noinline
func middle(n int) uint64 {
	var s uint64
	for i := 0; i < n; i++ {
		s += mix(leaf(i))
	}
	return s
}

func main() {
	seconds := 10.0
	if len(os.Args) > 1 {
		if v, err := strconv.ParseFloat(os.Args[1], 64); err == nil {
			seconds = v
		}
	}
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	var sum uint64
	for time.Now().Before(deadline) {
		sum += middle(100)
	}
	fmt.Println(sum)
}
