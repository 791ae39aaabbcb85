// gowork: a CPU-bound Go program with a known profile, for the Go symbolization and unwinding tests. It
// runs for the number of seconds given as its first argument (default 10), in the mode given as its
// second (default inline). It prints "gowork pid=P" first (the tests' harness waits for it) and a
// checksum last, so nothing is optimized away.
//
//	inline:  CPU in main.step, inlined into main.leaf's loop (a frameless leaf), under main.middle
//	         (which inlines main.mix too).
//	sha256:  CPU in crypto/sha256.block, standard-library assembly, under main.hash.
//	weights: main.work5, main.work3 and main.work2 (frameless leaves doing the same work per call),
//	         one chosen per chunk at random with weights 5:3:2, under main.weighted, in main.main and
//	         in a second goroutine (main.spin), so two CPUs give twice the samples.
package main

import (
	"crypto/sha256"
	"fmt"
	"math/rand"
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

var block [4096]byte

//go:noinline
func hash(n int) uint64 {
	var s uint64
	for i := 0; i < n; i++ {
		block[0] = byte(i)
		d := sha256.Sum256(block[:])
		s += uint64(d[0])
	}
	return s
}

//go:noinline
func work5(n int) uint64 {
	x := uint64(n)
	for i := 0; i < 20000; i++ {
		x = x*2862933555777941757 + 3037000493
	}
	return x
}

//go:noinline
func work3(n int) uint64 {
	x := uint64(n)
	for i := 0; i < 20000; i++ {
		x = x*2862933555777941757 + 3037000493
	}
	return x
}

//go:noinline
func work2(n int) uint64 {
	x := uint64(n)
	for i := 0; i < 20000; i++ {
		x = x*2862933555777941757 + 3037000493
	}
	return x
}

//go:noinline
func weighted(r *rand.Rand, n int) uint64 {
	var s uint64
	for i := 0; i < n; i++ {
		switch k := r.Intn(10); {
		case k < 5:
			s += work5(i)
		case k < 8:
			s += work3(i)
		default:
			s += work2(i)
		}
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
	mode := "inline"
	if len(os.Args) > 2 {
		mode = os.Args[2]
	}
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	done := make(chan uint64)
	if mode == "weights" {
		go spin(deadline, done)
	}
	r := rand.New(rand.NewSource(1))
	var sum uint64
	for time.Now().Before(deadline) {
		switch mode {
		case "sha256":
			sum += hash(20)
		case "weights":
			sum += weighted(r, 100)
		default:
			sum += middle(100)
		}
	}
	if mode == "weights" {
		sum += <-done
	}
	fmt.Println(sum)
}

//go:noinline
func spin(deadline time.Time, done chan<- uint64) {
	r := rand.New(rand.NewSource(2))
	var sum uint64
	for time.Now().Before(deadline) {
		sum += weighted(r, 100)
	}
	done <- sum
}
