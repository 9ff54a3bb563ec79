import FastPath
import Testing

@Suite struct RetentionSettingTests {
    @Test func durationsTakeDaysHoursOrMinutes() {
        #expect(SettingType.parseDuration("14d") == Int64(14 * 86_400))
        #expect(SettingType.parseDuration("36h") == Int64(36 * 3_600))
        #expect(SettingType.parseDuration("90m") == Int64(90 * 60))
        #expect(SettingType.parseDuration("2D") == Int64(2 * 86_400))
        #expect(SettingType.parseDuration("30s") == Int64(30))
        for bad in ["14", "d", "0d", "-1d", "1.5h", "14x", "", "h14", "99999999999999999d"] {
            #expect(SettingType.parseDuration(bad) == nil, "\(bad) accepted")
        }
    }

    @Test func theRetentionSettingsAreTyped() {
        #expect(Setting.retentionWindow.type.accepts("14d"))
        #expect(!Setting.retentionWindow.type.accepts("14"))
        #expect(Setting.retentionFull.type.accepts("3"))
        #expect(!Setting.retentionFull.type.accepts("0"))
        #expect(Setting.retentionArchiveFull.type.accepts("1"))
        #expect(Setting.expireAuto.type.accepts("true") && !Setting.expireAuto.type.accepts("maybe"))
        #expect(Setting.expireAuto.defaultValue == "false")
        #expect(Setting.named("retention-window") == .retentionWindow)
    }
}
