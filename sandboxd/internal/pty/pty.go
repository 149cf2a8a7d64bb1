// Package pty allocates pseudo-terminals with the standard library only: /dev/ptmx and three
// ioctls (unlock, the pts number, the window size).
//
// The master is an *os.File in Go's poller (os.OpenFile sets O_NONBLOCK on a character device
// the poller takes), so reading and writing it park goroutines, not threads, and Close or a
// deadline interrupts them. Its fd is reached through SyscallConn, never Fd(), which would put
// it back in blocking mode.
package pty

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// The ioctls (asm-generic values: the same on linux/amd64 and linux/arm64).
const (
	tiocgptn   = 0x80045430 // TIOCGPTN: the pts number of a master
	tiocsptlck = 0x40045431 // TIOCSPTLCK: (un)lock the pts of a master
	tiocgwinsz = 0x5413     // TIOCGWINSZ
	tiocswinsz = 0x5414     // TIOCSWINSZ
)

// MaxSide is the largest number of columns or rows a terminal may have.
const MaxSide = 1000

// Size is a terminal's window size in characters.
type Size struct {
	Cols int `json:"cols"`
	Rows int `json:"rows"`
}

// Valid answers whether both sides are 1 to MaxSide.
func (s Size) Valid() bool {
	return s.Cols >= 1 && s.Cols <= MaxSide && s.Rows >= 1 && s.Rows <= MaxSide
}

// winsize is struct winsize of <asm-generic/termios.h>.
type winsize struct{ rows, cols, xpixel, ypixel uint16 }

func ioctl(f *os.File, request uintptr, arg unsafe.Pointer) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := conn.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, request, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// Open allocates a pseudo-terminal of the given size: its master (in the poller) and its pts,
// neither of which becomes sandboxd's controlling terminal (O_NOCTTY: sandboxd leads a session).
func Open(size Size) (master, pts *os.File, err error) {
	if !size.Valid() {
		return nil, nil, fmt.Errorf("terminal size %dx%d out of range", size.Cols, size.Rows)
	}
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0) // O_CLOEXEC: Go adds it
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*os.File, *os.File, error) {
		master.Close()
		return nil, nil, err
	}
	var unlock int32
	if err := ioctl(master, tiocsptlck, unsafe.Pointer(&unlock)); err != nil {
		return fail(fmt.Errorf("unlock the pts: %w", err))
	}
	var n uint32
	if err := ioctl(master, tiocgptn, unsafe.Pointer(&n)); err != nil {
		return fail(fmt.Errorf("the pts number: %w", err))
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.FormatUint(uint64(n), 10), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return fail(err)
	}
	if err := SetSize(master, size); err != nil {
		pts.Close()
		return fail(err)
	}
	return master, pts, nil
}

// SetSize sets the window size of a terminal (its master): the kernel sends SIGWINCH to the
// terminal's foreground process group when it changes.
func SetSize(f *os.File, size Size) error {
	if !size.Valid() {
		return errors.New("terminal size out of range")
	}
	ws := winsize{rows: uint16(size.Rows), cols: uint16(size.Cols)}
	return ioctl(f, tiocswinsz, unsafe.Pointer(&ws))
}

// GetSize answers the window size of a terminal.
func GetSize(f *os.File) (Size, error) {
	var ws winsize
	if err := ioctl(f, tiocgwinsz, unsafe.Pointer(&ws)); err != nil {
		return Size{}, err
	}
	return Size{Cols: int(ws.cols), Rows: int(ws.rows)}, nil
}
