// gowork: a CPU-bound Go program with a known profile, for the Go symbolization tests. It burns CPU in
// main.step, inlined into main.leaf's loop, under main.middle (which inlines main.mix too), for the
// number of seconds given as its argument (default 10). It prints "gowork pid=P" first (the tests'
// harness waits for it) and a checksum last, so nothing is optimized away.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func step(x uint64) uint64 {
	return x*6364136223846793005 + 1442695040888963407
}

//go:noinline
func leaf(n int) uint64 {
	x := uint64(n)
	for i := 0; i < 20000; i++ {
		x = step(x)
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
	fmt.Printf("gowork pid=%d\n", os.Getpid())
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
