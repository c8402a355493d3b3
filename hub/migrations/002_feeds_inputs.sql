-- Feeds (metadata; data lives in PHPFina files) and inputs (last values live in Redis).
CREATE TABLE feeds (
    id INT AUTO_INCREMENT PRIMARY KEY,
    user_id INT NOT NULL,
    name VARCHAR(64) NOT NULL,
    tag VARCHAR(64) NOT NULL DEFAULT '',
    engine TINYINT NOT NULL DEFAULT 5,
    `interval` INT NOT NULL,
    unit VARCHAR(16) NOT NULL DEFAULT '',
    public BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE KEY feed_user_tag_name (user_id, tag, name),
    FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
) ENGINE=InnoDB;

CREATE TABLE inputs (
    id INT AUTO_INCREMENT PRIMARY KEY,
    user_id INT NOT NULL,
    nodeid VARCHAR(64) NOT NULL,
    name VARCHAR(64) NOT NULL,
    description VARCHAR(128) NOT NULL DEFAULT '',
    processlist TEXT NOT NULL DEFAULT '',
    UNIQUE KEY input_user_node_name (user_id, nodeid, name),
    FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
) ENGINE=InnoDB;
