-- In-home display: one row per user (household name, the feed that is "my power", the
-- tariff as validated JSON). No row, or a NULL tariff, is shown as "no tariff set".
CREATE TABLE household (
    user_id INT PRIMARY KEY,
    name VARCHAR(64) NOT NULL DEFAULT '',
    power_feed INT NULL,
    tariff TEXT NULL,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
    FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
) ENGINE=InnoDB;
