module example.com/veil-go-handler

go 1.19
