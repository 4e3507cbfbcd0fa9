// The lab's sandbox ("pause") image: no registry to pull registry.k8s.io/pause from,
// so this blocks until SIGTERM or SIGINT, as the real one does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
