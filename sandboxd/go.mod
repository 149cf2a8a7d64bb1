module vibebox.dev/sandboxd

go 1.24
