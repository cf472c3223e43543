"""Server knowledge shared by actions: what MySQL and MariaDB say and how to read it."""
