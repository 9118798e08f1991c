module machinery-interop

go 1.19
