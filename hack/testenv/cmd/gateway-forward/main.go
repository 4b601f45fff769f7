// Command gateway-forward relays TCP connections from one local address to
// another. The test node runs it on the pod bridge's gateway address so pods
// reach the kube-apiserver, which listens on 127.0.0.1 only (a loopback address
// is not reachable from a pod's network namespace, and no other address of
// this machine may be exposed).
package main

import (
	"flag"
	"io"
	"log"
	"net"
)

func main() {
	listen := flag.String("listen", "", "address to accept on, e.g. 10.244.0.1:16443")
	target := flag.String("target", "", "address to relay to, e.g. 127.0.0.1:16443")
	flag.Parse()
	if *listen == "" || *target == "" {
		log.Fatal("both --listen and --target are required")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("relaying %s -> %s", *listen, *target)
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Printf("accept: %v", err)
			continue
		}
		go relay(c, *target)
	}
}

func relay(c net.Conn, target string) {
	defer c.Close()
	t, err := net.Dial("tcp", target)
	if err != nil {
		log.Printf("dial %s: %v", target, err)
		return
	}
	defer t.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(t, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, t); done <- struct{}{} }()
	<-done
}
