// gocgo: a Go program whose CPU goes to C code called through cgo, for the Go unwinding tests. main.main
// calls main.callC, which calls the C function burn_c (runtime.cgocall -> runtime.asmcgocall, on the g0
// stack) in a loop, for the number of seconds given as its argument (default 10). It prints
// "gocgo pid=P" first (the tests' harness waits for it) and a checksum last.
package main

/*
#include <stdint.h>

__attribute__((noinline)) uint64_t burn_c(uint64_t n)
{
	uint64_t x = n;

	for (int i = 0; i < 200000; i++)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	return x;
}
*/
import "C"

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

//go:noinline
func callC(n int) uint64 {
	return uint64(C.burn_c(C.uint64_t(n)))
}

func main() {
	fmt.Printf("gocgo pid=%d\n", os.Getpid())
	seconds := 10.0
	if len(os.Args) > 1 {
		if v, err := strconv.ParseFloat(os.Args[1], 64); err == nil {
			seconds = v
		}
	}
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	var sum uint64
	for i := 0; time.Now().Before(deadline); i++ {
		sum += callC(i)
	}
	fmt.Println(sum)
}
