-- Smart devices (plugs, relays, EV chargers) and their broker accounts. Live state (last
-- report, presence) lives in Redis; this table holds what must survive a restart.
CREATE TABLE devices (
    id INT AUTO_INCREMENT PRIMARY KEY,
    user_id INT NOT NULL,
    name VARCHAR(64) NOT NULL,
    type VARCHAR(32) NOT NULL,
    node_type VARCHAR(32) NOT NULL DEFAULT '',
    base_topic VARCHAR(190) NOT NULL,
    mqtt_username VARCHAR(64) NULL UNIQUE,
    ip VARCHAR(45) NOT NULL DEFAULT '',
    status VARCHAR(16) NOT NULL DEFAULT 'active',
    pairing_expires BIGINT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE KEY device_base_topic (base_topic),
    FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
) ENGINE=InnoDB;

-- One schedule per device; runtime state (current occurrence, last command sent) is kept
-- here so a restarted worker neither forgets a started run nor switches a device twice.
CREATE TABLE schedules (
    device_id INT PRIMARY KEY,
    ready_by CHAR(5) NOT NULL,
    period_s INT NOT NULL,
    interruptible BOOLEAN NOT NULL DEFAULT FALSE,
    repeat_days VARCHAR(16) NOT NULL DEFAULT '',
    once_on DATE NULL,
    mode VARCHAR(8) NOT NULL DEFAULT 'smart',
    on_completion VARCHAR(8) NOT NULL DEFAULT 'off',
    occurrence TEXT NULL,
    last_command TEXT NULL,
    last_plan TEXT NULL,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
    FOREIGN KEY (device_id) REFERENCES devices(id) ON DELETE CASCADE
) ENGINE=InnoDB;
