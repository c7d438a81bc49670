package store

import "database/sql"

const dsn = "shop:YAt7zs?g4z6@+X3dl@tcp(10.0.3.7:3306)/shop?parseTime=true"
