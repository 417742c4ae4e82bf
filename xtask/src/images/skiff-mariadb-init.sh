#!/bin/sh
# skiff demo database: initialise the data directory once (system tables, the root user
# for MYSQL_ROOT_PASSWORD, the demo rows), then run MariaDB in the foreground.
set -e
DATADIR=/var/lib/mysql
PASSWORD="${MYSQL_ROOT_PASSWORD:-123456}"
mkdir -p "$DATADIR" /run/mysqld /tmp
if [ ! -d "$DATADIR/mysql" ]; then
  echo "skiff-mariadb: initialising $DATADIR"
  {
    echo "CREATE DATABASE IF NOT EXISTS mysql;"
    echo "USE mysql;"
    cat /usr/share/mysql/mysql_system_tables.sql /usr/share/mysql/mysql_system_tables_data.sql
    # Only root@localhost (unix socket) and root@'%' with the password remain.
    echo "DELETE FROM mysql.global_priv WHERE User='root' AND Host <> 'localhost';"
    echo "FLUSH PRIVILEGES;"
    echo "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '$PASSWORD';"
    echo "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    echo "CREATE DATABASE IF NOT EXISTS demo;"
    echo "CREATE TABLE demo.visits (id INT PRIMARY KEY, name VARCHAR(64), city VARCHAR(64));"
    echo "INSERT INTO demo.visits VALUES (1,'Ada Lovelace','London'),(2,'Grace Hopper','Arlington'),(3,'Linus Torvalds','Helsinki'),(4,'Barbara Liskov','Boston');"
  } | /usr/sbin/mariadbd --bootstrap --user=root --datadir="$DATADIR" --basedir=/usr \
      --lc-messages-dir=/usr/share/mysql --log-warnings=0
fi
exec /usr/sbin/mariadbd --user=root --datadir="$DATADIR" --basedir=/usr \
  --lc-messages-dir=/usr/share/mysql --bind-address=0.0.0.0 --port=3306 \
  --skip-name-resolve --socket=/run/mysqld/mysqld.sock
