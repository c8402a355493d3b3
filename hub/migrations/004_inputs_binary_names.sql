-- Input nodes and names compare byte for byte, as the worker's in-memory lookup does:
-- "Power" and "power" are two inputs, not one row found under the other's name.
ALTER TABLE inputs
    MODIFY nodeid VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    MODIFY name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
