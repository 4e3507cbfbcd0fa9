module bgplb.local/pause

go 1.21
