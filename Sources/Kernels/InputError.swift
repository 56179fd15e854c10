/// Bad input — a file, a configuration or a setting the user gave — as opposed to a bug.
/// The command line reports it in one line (naming the file and the place) and exits with status 2.
public protocol InputError: Error, CustomStringConvertible {}
