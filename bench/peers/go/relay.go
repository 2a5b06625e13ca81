// Go peer of parley's benchmark (issue 10): an idiomatic gorilla/websocket relay. GET
// /ws/<room> joins <room>; each text message is relayed to the other members, no echo. One read
// goroutine and one write goroutine per connection (gorilla allows one concurrent writer), as in
// gorilla's chat example, but every message keeps its own frame.
//
// Build (Debian's packaged module, no network):
//   GO111MODULE=off GOPATH=/usr/share/gocode go build -o relay-go relay.go
// Run: relay-go PORT
package main

import (
	"log"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
)

type client struct {
	conn *websocket.Conn
	send chan []byte
}

type hub struct {
	mu    sync.RWMutex
	rooms map[string]map[*client]struct{}
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	CheckOrigin:     func(r *http.Request) bool { return true },
}

func (h *hub) join(room string, c *client) {
	h.mu.Lock()
	m := h.rooms[room]
	if m == nil {
		m = make(map[*client]struct{})
		h.rooms[room] = m
	}
	m[c] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) leave(room string, c *client) {
	h.mu.Lock()
	if m := h.rooms[room]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(h.rooms, room)
		}
	}
	h.mu.Unlock()
}

func (h *hub) publish(room string, from *client, msg []byte) {
	h.mu.RLock()
	for c := range h.rooms[room] {
		if c != from {
			select {
			case c.send <- msg:
			default: // a member this far behind is dropped, as the chat example does
				go c.conn.Close()
			}
		}
	}
	h.mu.RUnlock()
}

func main() {
	port := "8080"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	h := &hub{rooms: make(map[string]map[*client]struct{})}
	http.HandleFunc("/ws/", func(w http.ResponseWriter, r *http.Request) {
		room := strings.TrimPrefix(r.URL.Path, "/ws/")
		if room == "" {
			http.NotFound(w, r)
			return
		}
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &client{conn: conn, send: make(chan []byte, 1024)}
		h.join(room, c)
		go func() {
			for msg := range c.send {
				if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
					conn.Close()
				}
			}
		}()
		for {
			mt, msg, err := conn.ReadMessage()
			if err != nil {
				break
			}
			if mt == websocket.TextMessage {
				h.publish(room, c, msg)
			}
		}
		h.leave(room, c)
		conn.Close()
		close(c.send)
	})
	log.Printf("relay-go listening on 127.0.0.1:%s", port)
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port, nil))
}
