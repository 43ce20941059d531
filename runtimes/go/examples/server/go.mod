module example.com/veil-go-server

go 1.19
