-- A small shop database for drills in the local lab (runbook lab up): four core tables with
-- foreign keys (users, products, orders, order_items) and two others (reviews, events), a few
-- thousand rows generated on the server.
CREATE DATABASE IF NOT EXISTS shop;
USE shop;
SET SESSION max_recursive_iterations = 100000;
CREATE TABLE users (
  id INT PRIMARY KEY,
  email VARCHAR(120) NOT NULL UNIQUE,
  created_at DATETIME NOT NULL
) ENGINE=InnoDB;
CREATE TABLE products (
  id INT PRIMARY KEY,
  name VARCHAR(120) NOT NULL,
  price DECIMAL(10,2) NOT NULL
) ENGINE=InnoDB;
CREATE TABLE orders (
  id INT PRIMARY KEY,
  user_id INT NOT NULL,
  created_at DATETIME NOT NULL,
  status ENUM('new','paid','shipped') NOT NULL,
  CONSTRAINT fk_orders_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;
CREATE TABLE order_items (
  order_id INT NOT NULL,
  line INT NOT NULL,
  product_id INT NOT NULL,
  qty INT NOT NULL,
  PRIMARY KEY (order_id, line),
  CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE,
  CONSTRAINT fk_items_product FOREIGN KEY (product_id) REFERENCES products (id)
) ENGINE=InnoDB;
INSERT INTO users
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
  SELECT i, CONCAT('user', i, '@example.com'), '2026-01-01' + INTERVAL i MINUTE FROM n;
INSERT INTO products
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
  SELECT i, CONCAT('product ', i), ROUND(1 + (i * 7919 % 1000) / 10, 2) FROM n;
INSERT INTO orders
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
  SELECT i, 1 + (i * 31 % 2000), '2026-02-01' + INTERVAL i MINUTE, ELT(1 + i % 3, 'new', 'paid', 'shipped') FROM n;
INSERT INTO order_items
  WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 29999)
  SELECT 1 + i DIV 3, 1 + i % 3, 1 + (i * 13 % 200), 1 + i % 4 FROM n;
-- Two tables outside the core set, for the full-recovery stage of runbooks/emergency.yml.
CREATE TABLE reviews (
  id INT PRIMARY KEY,
  user_id INT NOT NULL,
  product_id INT NOT NULL,
  stars TINYINT NOT NULL,
  body VARCHAR(200) NOT NULL,
  CONSTRAINT fk_reviews_user FOREIGN KEY (user_id) REFERENCES users (id),
  CONSTRAINT fk_reviews_product FOREIGN KEY (product_id) REFERENCES products (id)
) ENGINE=InnoDB;
CREATE TABLE events (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  at DATETIME NOT NULL,
  kind VARCHAR(30) NOT NULL,
  detail VARCHAR(200) NOT NULL
) ENGINE=InnoDB;
INSERT INTO reviews
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
  SELECT i, 1 + (i * 17 % 2000), 1 + (i * 11 % 200), 1 + i % 5, CONCAT('review ', i) FROM n;
INSERT INTO events (at, kind, detail)
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
  SELECT '2026-03-01' + INTERVAL i SECOND, ELT(1 + i % 3, 'login', 'view', 'checkout'), CONCAT('event ', i) FROM n;
